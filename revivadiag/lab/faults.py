"""Fault scenarios on a lab instance: ``revivadiag lab break SCENARIO`` and ``lab heal``.

Every scenario finds its targets by *role* (:mod:`revivadiag.collect.roles`: proxy, backend,
database, cache), never by the lab's names, so each works on the seed stack and the shop
stack alike. ``break`` checks that the instance is healthy and not broken already, applies
the fault, prints what it did, and records it in the instance's state dir
(``labs/<prefix>/fault.json``, mode 0600) so that ``heal`` undoes exactly that, from any
process. ``heal`` undoes it, refreshes a proxy that resolved the backend once when the
backend's address on the proxy's networks changed, and waits until every service is healthy.

Scenarios (``SCENARIOS``; ``revivadiag lab break --list``):

``backend-stopped``
    The backend's container is stopped. Heal starts it (same container, same addresses).
``backend-recreated``
    The backend's container is removed and created again (a redeploy) at *new* addresses:
    placeholders hold the old addresses while the new container starts, then go away. A proxy
    that resolved the backend's name once (current, shop-current) keeps sending to the old
    address: 502 until heal restarts it. A proxy that re-resolves (target: its entrypoint asks
    127.0.0.11 every few seconds; shop-target: resolver + variable proxy_pass) follows by
    itself within its re-resolution interval. Heal cannot bring the old container back: the
    backend keeps its new id and addresses.
``backend-slow``
    Every request to the backend waits ``ms`` (default 300) first: no netem in this kernel, so
    the lab's backend images honour a delay file named by their ``REVIVADIAG_DELAY_FILE``
    environment variable; break writes the file (archive API), heal removes it.
``database-unreachable``
    The network path backend -> database is cut with ``docker network disconnect``: the
    backend leaves the networks it shares with the database when it has others (target,
    shop-target); on one flat network (current, shop-current) the database leaves it instead,
    so the backend keeps its networks. Heal connects it again with the same aliases.
``cache-wrong-password``
    The cache's password is changed (``CONFIG SET requirepass`` with a random value, sent on
    the exec's stdin, never in an argv) and its client connections closed: the backend's
    password is now wrong (its reconnects get WRONGPASS) and the cache's own healthcheck
    fails too. Heal sets the instance's password back.
``network-removed``
    The backend is removed from the networks it shares with the proxy (on a flat network
    that is every network it has). Heal connects it again with the same aliases.

Heal restores names, networks, aliases, the running state and health; container addresses
are given by Docker's IPAM when a container (re)joins a network, so they may change (always
for ``backend-recreated``, which also changes the container's id); ``heal`` prints every
address that differs from before the break.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

from revivadiag.errors import FaultStateError, LabError, ParameterError
from revivadiag.lab import state
from revivadiag.lab.fault_scenarios import (
    DEFAULT_DELAY_MS,
    STOP_TIMEOUT_S,
    FaultErrors,
    check_delay,
    check_scenario,
    expect_ok,
    redis_cli,
    remove_placeholders,
)
from revivadiag.lab.fault_view import (
    address_changes,
    describe,
    health_marks,
    lab_config,
    read_lab,
    wait_checked,
    wait_healthy,
)

FAULT_FILE = "fault.json"
HEAL_TIMEOUT_S = 180.0
#: seconds one engine API call of a scenario may take
API_TIMEOUT_S = 60.0
#: how long break waits for the instance to be healthy before it changes anything
READY_TIMEOUT_S = 30.0


# ---------------------------------------------------------------- the record


@dataclass
class Fault:
    """What ``break`` did, kept in the instance's state dir until ``heal``."""

    scenario: str
    prefix: str
    broken_at: str
    did: list[str]
    #: undo steps, applied in order by :func:`heal` (plain JSON: another process reads them)
    undo: list[dict[str, Any]]
    before: dict[str, dict[str, Any]]
    proxy: str = ""
    backend: str = ""
    proxy_resolves_once: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """The lines ``lab break`` prints."""
        return "\n".join([f"lab {self.prefix}: {self.scenario}", *(f"  {d}" for d in self.did),
                          f"  undo with: revivadiag lab heal --prefix {self.prefix}"])


def fault_path(prefix: str) -> Path:
    """``labs/<prefix>/fault.json`` in the state dir."""
    return state.instance_dir(prefix) / FAULT_FILE


def current_fault(prefix: str) -> Fault | None:
    """The fault recorded for ``prefix``, or None when nothing is broken."""
    path = fault_path(prefix)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("pending"):  # a break being applied (or one that died doing it)
            return Fault(str(data["scenario"]), prefix, "(being applied)", [], [], {})
        return Fault(**data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LabError(f"unreadable fault record {path}: {exc}; remove it by hand") from exc


def _claim(prefix: str, scenario: str) -> None:
    """Create the record exclusively (a second break, even from another process, fails)."""
    path = fault_path(prefix)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        existing = current_fault(prefix)
        what = f"{existing.scenario} since {existing.broken_at}" if existing else "a fault"
        raise FaultStateError(prefix, f"is already broken ({what}); run `revivadiag lab heal "
                              f"--prefix {prefix}` first") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"scenario": scenario, "prefix": prefix, "pending": True}, fh)


def _save(fault: Fault) -> None:
    path = fault_path(fault.prefix)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(asdict(fault), fh, indent=1)
    os.replace(tmp, path)


# ---------------------------------------------------------------- break and heal


def _connect_client(client: docker.DockerClient | None) -> docker.DockerClient:
    from revivadiag.engine.client import connect

    # stop, remove, network changes: an engine under load can take longer than probes allow
    return client or connect(timeout_s=API_TIMEOUT_S)


def break_lab(prefix: str, scenario: str, *, ms: int | None = None,
              client: docker.DockerClient | None = None) -> Fault:
    """Apply ``scenario`` to the instance ``prefix`` and record it; returns the record.

    ParameterError (unknown scenario, bad ``ms``), FaultStateError (already broken), LabError
    (no such instance, not healthy, a role missing) are raised before anything changes.
    """
    chosen = check_scenario(scenario)
    delay = check_delay(DEFAULT_DELAY_MS if ms is None else ms)
    if ms is not None and chosen.name != "backend-slow":
        raise ParameterError("--ms", ms, "only the backend-slow scenario takes a delay")
    config = lab_config(prefix)
    existing = current_fault(prefix)
    if existing is not None:
        raise FaultStateError(prefix, f"is already broken ({existing.scenario} since "
                              f"{existing.broken_at}); run `revivadiag lab heal --prefix "
                              f"{prefix}` first")
    client = _connect_client(client)
    wait_healthy(client, config, READY_TIMEOUT_S)
    view = read_lab(client, prefix)
    before = describe(client, prefix)
    _claim(prefix, scenario)
    try:
        change = chosen.apply(view, delay)
    except LabError:
        fault_path(prefix).unlink(missing_ok=True)
        raise
    except FaultErrors as exc:
        fault_path(prefix).unlink(missing_ok=True)
        raise LabError(f"{scenario} on lab {prefix!r} failed: {exc} (what it changed may "
                       f"need `revivadiag lab down --prefix {prefix}`)") from exc
    proxy = next((m for m in view.members.values() if m.role == "proxy"), None)
    backend = next((m for m in view.members.values() if m.role == "backend"), None)
    fault = Fault(scenario=scenario, prefix=prefix,
                  broken_at=datetime.now(UTC).isoformat(timespec="seconds"),
                  did=change.did, undo=change.undo, before=before,
                  proxy=proxy.service if proxy else "", backend=backend.service if backend else "",
                  proxy_resolves_once=view.proxy_resolves_once,
                  options={"ms": delay} if chosen.name == "backend-slow" else {})
    _save(fault)
    return fault


def _undo(client: docker.DockerClient, prefix: str, step: Mapping[str, Any]) -> str:
    op, name = step["op"], str(step["container"])
    if op == "remove_container":
        remove_placeholders(client, prefix)
        return f"removed the placeholder {name}"
    if op == "start":
        client.api.start(name)
        return f"started {name}"
    if op == "connect":
        client.api.connect_container_to_network(name, step["network"],
                                                aliases=list(step["aliases"]) or None)
        return f"connected {name} to {step['network']} (aliases {', '.join(step['aliases'])})"
    if op == "remove_file":
        res = client.containers.get(name).exec_run(["rm", "-f", str(step["path"])], user="root")
        if res.exit_code != 0:
            raise LabError(f"could not remove {step['path']} in {name}")
        return f"removed {step['path']} from {name}"
    if op == "cache_password":
        original = state.read_secrets(prefix)["REDIS_PASSWORD"]
        out = redis_cli(client, name, [f"AUTH {step['temporary']}",
                                       f"CONFIG SET requirepass {original}"])
        expect_ok(out, 2, f"restoring the password of {name}")
        return f"restored the password of {name}"
    raise LabError(f"unknown undo step {op!r} in the fault record")


def _refresh_proxy(client: docker.DockerClient, fault: Fault,
                   now: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Restart a proxy that resolved the backend once when the backend's address on the
    proxy's networks is not the one it started with."""
    if not fault.proxy_resolves_once or not fault.proxy or not fault.backend:
        return None
    proxy_nets = set(fault.before.get(fault.proxy, {}).get("networks", {}))
    old = fault.before.get(fault.backend, {}).get("networks", {})
    new = now.get(fault.backend, {}).get("networks", {})
    moved = [n for n in proxy_nets & set(old)
             if old[n]["ipv4"] != new.get(n, {}).get("ipv4")]
    if not moved:
        return None
    name = str(fault.before[fault.proxy]["container"])
    client.api.restart(name, timeout=STOP_TIMEOUT_S)
    return (f"restarted the proxy {name}: it resolves the backend once, and the backend's "
            f"address on {', '.join(sorted(moved))} changed")


def touched(fault: Fault) -> set[str]:
    """The services heal waits to see pass a fresh healthcheck: the backend and the proxy
    (whose checks cover the paths to the database and the cache) and every service an undo
    step names.

    >>> sorted(touched(Fault("s", "p", "t", [], [{"op": "start", "container": "p_db_1"}],
    ...     {"db": {"container": "p_db_1"}}, proxy="proxy", backend="api")))
    ['api', 'db', 'proxy']
    """
    names = {str(s.get("container")) for s in fault.undo}
    return {fault.proxy, fault.backend} - {""} | {
        service for service, d in fault.before.items() if d.get("container") in names}


def _refresh(client: docker.DockerClient, fault: Fault, prefix: str) -> list[str]:
    refreshed = _refresh_proxy(client, fault, describe(client, prefix))
    return [refreshed] if refreshed else []


@dataclass
class Healed:
    """What ``heal`` did and what differs from before the break (addresses, ids)."""

    scenario: str
    prefix: str
    did: list[str]
    changed: list[str]
    seconds: float

    def summary(self) -> str:
        """The lines ``lab heal`` prints."""
        lines = [f"lab {self.prefix}: healed {self.scenario} in {self.seconds:.1f} s",
                 *(f"  {d}" for d in self.did)]
        if self.changed:
            lines.append("  different from before (given by Docker): " + "; ".join(self.changed))
        return "\n".join(lines)


def heal(prefix: str, *, timeout_s: float = HEAL_TIMEOUT_S,
         client: docker.DockerClient | None = None) -> Healed:
    """Undo the recorded fault of ``prefix`` and wait until every service is healthy.

    FaultStateError when nothing is broken; the record is kept when undoing fails, so heal
    can be run again.
    """
    config = lab_config(prefix)
    fault = current_fault(prefix)
    if fault is None:
        raise FaultStateError(prefix, "has nothing broken to heal (no `lab break` recorded)")
    client = _connect_client(client)
    started = time.monotonic()
    marks = health_marks(client, prefix)
    did: list[str] = []
    refreshed_once = False
    try:
        # placeholders go last: a proxy restarted while they hold the old addresses keeps
        # its own address
        steps = sorted(fault.undo, key=lambda s: s["op"] == "remove_container")
        for step in steps:  # each step done is dropped from the record: a rerun resumes
            if step["op"] == "remove_container" and not refreshed_once:
                refreshed_once = True
                did += _refresh(client, fault, prefix)
            did.append(_undo(client, prefix, step))
            fault.undo = [s for s in fault.undo if s is not step]
            _save(fault)
        if not refreshed_once:
            did += _refresh(client, fault, prefix)
        wait_checked(client, config, marks, timeout_s, touched(fault))
    except FaultErrors as exc:
        raise LabError(f"healing {fault.scenario} on lab {prefix!r} failed: {exc}") from exc
    if not did:
        did.append("nothing to undo in the containers")
    did.append("every service is healthy")
    fault_path(prefix).unlink(missing_ok=True)
    return Healed(fault.scenario, prefix, did,
                  address_changes(fault.before, describe(client, prefix)),
                  time.monotonic() - started)
