"""`lab break` / `lab heal` on real lab instances: every scenario on the seed stack's `current`
variant and the shop stack's `shop-target`, each observed with the package's own probes while
broken, then healed back to the same names, networks, aliases and health. Plus the refusals:
an unknown scenario, a second break, a heal with nothing broken.

One private instance per stack (``lab_factory``), the scenarios in sequence on it; the
backend's redeploy goes last (it pulls the backend image's current tag again).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import docker
import pytest

import revivadiag as rd
from revivadiag.collect import incident
from revivadiag.collect.roles import Roles
from revivadiag.engine.jobs import DOCKER_DNS
from revivadiag.engine.probe import ProbeEngine
from revivadiag.errors import FaultStateError, LabError, ParameterError
from revivadiag.lab import (
    LabInstance,
    build_images,
    fault_scenarios,
    fault_view,
    faults,
    read_secrets,
)

pytestmark = [pytest.mark.integration, pytest.mark.destructive, pytest.mark.slow]

CLI = [sys.executable, "-m", "revivadiag"]
DELAY_MS = 400
#: seconds a re-resolving proxy may take to follow a recreated backend (shop-target's nginx
#: caches an answer 10 s; the seed target's entrypoint asks every 5 s)
FOLLOW_S = 30.0


class Lab:
    """A broken-and-healed instance with the probes the checks use (roles from the stack)."""

    def __init__(self, engine: docker.DockerClient, instance: LabInstance) -> None:
        self.engine = engine
        self.instance = instance
        self.prefix = instance.prefix
        snap = rd.snapshot(project=self.prefix, samples=1)
        self.ctx = incident.context(snap)
        self.roles = Roles.from_snapshot(snap)
        view = fault_view.read_lab(engine, self.prefix)
        self.members = {m.role: m for m in view.members.values()}
        self.resolves_once = view.proxy_resolves_once

    def run(self, role: str, job: dict[str, Any]) -> dict[str, Any]:
        """One probe job inside the (current) container of ``role``."""
        name = self.members[role].name
        cid = str(self.engine.containers.get(name).id)
        with ProbeEngine(self.engine, timeout_s=1.0) as probe:
            return probe.run({cid: [job]})[cid][0]

    def state(self) -> dict[str, Any]:
        return fault_view.structure(fault_view.describe(self.engine, self.prefix))


def through_proxy_fails(lab: Lab) -> None:
    """A request through the proxy gets no answer from the backend: a 502/504, or no answer
    in time (a proxy connecting to an address nobody holds waits for its connect timeout)."""
    res = incident.request_through_proxy(lab.ctx)
    assert not res["ok"], res
    assert res["outcome"] in ("HTTP 502", "HTTP 503", "HTTP 504", "TIMEOUT"), res


def check_stopped(lab: Lab) -> None:
    """The backend's container is exited and the proxy answers 502."""
    assert fault_view.describe(lab.engine, lab.prefix)[lab.members["backend"].service]["state"] \
        == "exited"
    through_proxy_fails(lab)


def check_slow(lab: Lab) -> None:
    """A request straight to the backend takes at least the injected delay."""
    res = lab.run("proxy", {"kind": "http", "samples": 3, "warmup": 0, "timeout_s": 5.0,
                            "url": f"http://{lab.ctx.backend}:{lab.ctx.backend_port}"
                                   f"{lab.ctx.backend_path}"})
    totals = [s["total_ms"] for s in res["samples"]]
    assert len(totals) == 3, res
    assert min(totals) >= DELAY_MS, totals


def check_database_cut(lab: Lab) -> None:
    """From the backend's namespace the database's port does not open, and the backend's
    health answers 503."""
    db = lab.members["database"]
    res = lab.run("backend", {"kind": "tcp", "host": db.service, "port": lab.roles.port(db.service),
                              "server": DOCKER_DNS, "timeout_s": 1.0, "retries": 0})
    assert res["outcome"] != "open", res
    direct = incident.request_direct(lab.ctx)
    assert direct["outcome"] == "HTTP 503", direct


def check_cache_password(lab: Lab) -> None:
    """The instance's Redis password is rejected by the cache (from the backend's side)."""
    cache = lab.members["cache"]
    res = lab.run("backend", {"kind": "redis", "host": cache.service,
                              "port": lab.roles.port(cache.service),
                              "password": read_secrets(lab.prefix)["REDIS_PASSWORD"],
                              "timeout_s": 2.0})
    assert res["auth_failed"] is True, {k: v for k, v in res.items() if k != "password"}


def check_network_removed(lab: Lab) -> None:
    """The proxy's resolver no longer knows the backend, and requests through it fail."""
    res = incident.resolve(lab.ctx, lab.ctx.backend)
    assert res["data"]["answers"] == [], res
    through_proxy_fails(lab)


def check_recreated(lab: Lab) -> None:
    """The backend answers at a new address; a proxy that resolved it once fails (502), one
    that re-resolves follows within its interval."""
    assert incident.request_direct(lab.ctx)["ok"]
    if lab.resolves_once:
        through_proxy_fails(lab)
        return
    deadline = time.monotonic() + FOLLOW_S
    while not incident.request_through_proxy(lab.ctx)["ok"]:
        assert time.monotonic() < deadline, "the proxy did not follow the new address"
        time.sleep(1.0)


CHECKS: list[tuple[str, Callable[[Lab], None]]] = [
    ("backend-stopped", check_stopped),
    ("backend-slow", check_slow),
    ("database-unreachable", check_database_cut),
    ("cache-wrong-password", check_cache_password),
    ("network-removed", check_network_removed),
    ("backend-recreated", check_recreated),
]


def test_checks_cover_every_scenario() -> None:
    """Every scenario the CLI lists is exercised below."""
    assert {name for name, _ in CHECKS} == set(fault_scenarios.SCENARIOS)


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """``revivadiag lab ...`` in a subprocess."""
    return subprocess.run([*CLI, "lab", *argv], capture_output=True, text=True, timeout=300,
                          check=False)


def refusals_before(lab: Lab) -> None:
    """Unknown scenario, a delay for another scenario, no such lab and a heal with nothing
    broken are typed errors that change nothing."""
    with pytest.raises(ParameterError, match="scenario"):
        faults.break_lab(lab.prefix, "backend-exploded", client=lab.engine)
    with pytest.raises(ParameterError, match="--ms"):
        faults.break_lab(lab.prefix, "backend-stopped", ms=100, client=lab.engine)
    with pytest.raises(LabError, match="no lab instance"):
        faults.break_lab("rdtnosuchlab", "backend-stopped", client=lab.engine)
    with pytest.raises(FaultStateError, match="nothing broken"):
        faults.heal(lab.prefix, client=lab.engine)


def second_break_refused(lab: Lab, first: str) -> None:
    """While broken, another break is refused (API and CLI: exit 2, no traceback) and
    changes nothing."""
    broken = lab.state()
    with pytest.raises(FaultStateError, match="already broken"):
        faults.break_lab(lab.prefix, "backend-slow", client=lab.engine)
    proc = cli("break", "network-removed", "--prefix", lab.prefix)
    assert proc.returncode == 2, proc.stderr
    assert f"already broken ({first}" in proc.stderr and "Traceback" not in proc.stderr
    assert lab.state() == broken


@pytest.mark.parametrize("variant", ["current", "shop-target"])
def test_every_scenario_breaks_and_heals(variant: str, engine: docker.DockerClient,
                                         lab_factory: Callable[..., LabInstance]) -> None:
    """Each scenario: break -> its effect seen by the probes -> heal -> the same names,
    networks, aliases, states and health as before, nothing recorded, the proxy answering.
    The first one is broken and healed through the CLI, the others through the API."""
    # the images of this checkout (cached unless another checkout retagged them since the
    # session's build): backend-slow needs the delay file the backend images honour
    build_images(client=engine)
    lab = Lab(engine, lab_factory(variant, publish=False))
    before = lab.state()
    assert lab.resolves_once is (variant == "current")
    refusals_before(lab)
    for i, (scenario, check) in enumerate(CHECKS):
        ms = DELAY_MS if scenario == "backend-slow" else None
        if i == 0:
            proc = cli("break", scenario, "--prefix", lab.prefix)
            assert proc.returncode == 0, proc.stderr
            assert scenario in proc.stdout
        else:
            fault = faults.break_lab(lab.prefix, scenario, ms=ms, client=engine)
            assert fault.did, scenario
        assert faults.current_fault(lab.prefix) is not None, scenario
        check(lab)
        if i == 0:
            second_break_refused(lab, scenario)
            proc = cli("heal", "--prefix", lab.prefix)
            assert proc.returncode == 0, proc.stderr
            assert f"healed {scenario}" in proc.stdout
        else:
            assert faults.heal(lab.prefix, client=engine).scenario == scenario
        assert faults.current_fault(lab.prefix) is None
        assert lab.state() == before, scenario
        assert incident.request_through_proxy(lab.ctx)["ok"], scenario
    proc = cli("heal", "--prefix", lab.prefix)
    assert proc.returncode == 2 and "nothing broken to heal" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not engine.containers.list(all=True, filters={
        "label": f"{fault_scenarios.PLACEHOLDER_LABEL}=1", "name": f"{lab.prefix}_fault_hold"})
