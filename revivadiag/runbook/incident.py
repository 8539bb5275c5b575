"""Helpers of ``notebooks/incident-502.ipynb``: one call per cell, on any stack's roles.

>>> from revivadiag.runbook import incident
>>> lab = incident.open_lab("", "current")            # doctest: +SKIP
>>> incident.break_lab(lab, "backend-recreated")       # doctest: +SKIP
>>> n = incident.Narrowing(rd.snapshot(project=lab.prefix))  # doctest: +SKIP
>>> n.through_proxy()                                  # doctest: +SKIP

:class:`Narrowing` keeps each observation, so that :meth:`Narrowing.cause` can decide from
all of them (:func:`revivadiag.analyze.incident.name_cause`, pure) and name the diagnosis's
finding that matches.
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd

from revivadiag.analyze import incident as judge
from revivadiag.analyze.incident import Observation
from revivadiag.collect import incident as probes

#: the environment variable the notebooks read when ``project`` is empty
PROJECT_ENV = "REVIVADIAG_PROJECT"
LAB_START_TIMEOUT_S = 150.0


@dataclass(frozen=True)
class LabHandle:
    """The lab instance a notebook works on, and whether the notebook started it itself."""

    prefix: str
    started: bool

    def __str__(self) -> str:
        return self.prefix


def open_lab(project: str = "", variant: str = "current") -> LabHandle:
    """The lab named by ``project`` (else ``$REVIVADIAG_PROJECT``); with neither, a private
    isolated instance of ``variant`` started now, publishing no host port
    (:func:`close_lab` removes it)."""
    from revivadiag.lab.lifecycle import isolated_config, up

    chosen = project or os.environ.get(PROJECT_ENV, "")
    if chosen:
        return LabHandle(chosen, started=False)
    instance = up(isolated_config(variant, publish=False), timeout_s=LAB_START_TIMEOUT_S)
    return LabHandle(instance.prefix, started=True)


def close_lab(lab: LabHandle) -> str:
    """Remove the instance if :func:`open_lab` started it; a line saying what happened."""
    from revivadiag.lab.lifecycle import down

    if not lab.started:
        return f"lab {lab.prefix} kept (it was given, not started here)"
    down(lab.prefix, volumes=True)
    return f"lab {lab.prefix} removed"


def break_lab(lab: LabHandle, scenario: str, ms: int | None = None) -> None:
    """Apply a fault scenario (``revivadiag lab break``) and print what it did."""
    from revivadiag.lab.faults import break_lab as apply

    print(apply(lab.prefix, scenario, ms=ms).summary())


def heal_lab(lab: LabHandle) -> None:
    """Undo it (``revivadiag lab heal``), wait until healthy, and print what changed."""
    from revivadiag.lab.faults import heal

    print(heal(lab.prefix).summary())


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class Narrowing:
    """The steps of "the proxy returns 502", each a method returning a one-row table."""

    def __init__(self, snap: Any, docker_host: str | None = None) -> None:
        self.snap = snap
        self.ctx = probes.context(snap, docker_host)
        self.observations: dict[str, Observation] = {}
        self.since: float | None = None

    def _keep(self, key: str, raw: dict[str, Any]) -> pd.DataFrame:
        obs = Observation(**raw)
        self.observations[key] = obs
        return obs.to_frame()

    def who(self) -> pd.Series:
        """The proxy, the backend and the paths the steps use (learned from the roles)."""
        return pd.Series(self.ctx.summary())

    def through_proxy(self) -> pd.DataFrame:
        """Step 1: the request through the proxy."""
        self.since = self.since or time.time() - 1
        return self._keep("through", probes.request_through_proxy(self.ctx))

    def upstream_name(self) -> str:
        """The name the proxy resolves for the backend (its proxy_pass or upstream server);
        the backend's service name when the configuration holds an address or is unread."""
        routes = judge.backend_passes(self.ctx.nginx_files or {}, self.ctx.backend_hosts)
        names = [r.host for r in routes if r.host and not _is_ip(r.host)
                 and not r.host.startswith("$")]
        return names[0] if names else self.ctx.backend

    def dns(self) -> pd.DataFrame:
        """Step 2: what Docker's resolver tells the proxy about the backend's name now."""
        return self._keep("dns", probes.resolve(self.ctx, self.upstream_name()))

    def proxy_upstreams(self) -> pd.DataFrame:
        """Step 3: the addresses the proxy really sent to, from its error log."""
        lines = probes.proxy_log_lines(self.ctx, since=self.since)
        errors = judge.upstream_errors(lines)
        addresses = sorted(set(errors["upstream_ip"]))  # what it used, however often
        self.observations["used"] = Observation(
            "the proxy's upstream (error log)", self.ctx.proxy_container, not len(errors),
            "upstream errors" if len(errors) else "no upstream errors",
            "; ".join(f"{r.upstream_ip}:{r.upstream_port} {r.error}"
                      for r in errors.itertuples()),
            {"addresses": addresses,
             "ports": sorted({int(p) for p in errors["upstream_port"]})})
        # how many requests failed depends on what else ran in that second: not shown
        return errors[["upstream_ip", "upstream_port", "error"]]

    def tcp_to_used(self) -> pd.DataFrame:
        """Step 4: TCP from the proxy to the addresses it uses."""
        used = self.observations.get("used")
        addresses = list(used.data.get("addresses", [])) if used else []
        ports = list(used.data.get("ports", [])) if used else []
        return self._keep("stale", probes.connect_from_proxy(
            self.ctx, addresses, ports[0] if ports else self.ctx.backend_port))

    def direct(self) -> pd.DataFrame:
        """Step 5: the request straight to the backend, by its name."""
        return self._keep("direct", probes.request_direct(self.ctx))

    def proxy_config(self) -> pd.DataFrame:
        """Step 6: the proxy's routes to the backend and whether it re-resolves the name."""
        from revivadiag.analyze.proxy_audit import declared_watcher

        files = self.ctx.nginx_files or {}
        routes = judge.backend_passes(files, self.ctx.backend_hosts)
        watcher = declared_watcher(self.snap.env, self.snap.containers, self.ctx.proxy)
        status, evidence = judge.resolution_of(files, self.ctx.backend_hosts, watcher)
        table = pd.DataFrame([{"location": r.location, "proxy_pass": r.url,
                               "resolves": r.host} for r in routes],
                             columns=["location", "proxy_pass", "resolves"])
        table.attrs["resolution"] = status
        print(f"re-resolution of the backend's name: {status} ({self.ctx.nginx_source})")
        print(evidence)
        return table

    def confirm(self) -> pd.DataFrame:
        """After the heal: the request through the proxy again (it replaces step 1)."""
        return self._keep("through", probes.request_through_proxy(self.ctx))

    def cause(self, findings: pd.DataFrame | None = None) -> pd.DataFrame:
        """The verdict from every step so far, with the matching diagnosis finding."""
        missing = Observation("", "", True, "not run")
        get = self.observations.get
        return judge.name_cause(get("through", missing), get("dns", missing),
                                get("used", missing), get("stale", missing),
                                get("direct", missing), findings).to_frame()

    def steps(self) -> pd.DataFrame:
        """Every observation so far, one row each."""
        return judge.steps_frame(list(self.observations.values()))


def diagnosis_findings(snap: Any, docker_host: str | None = None) -> pd.DataFrame:
    """The diagnosis of ``snap`` with the proxy's configuration read (no load on the broken
    stack: no burst, no reuse measurement); its findings frame."""
    import revivadiag as rd
    from revivadiag.collect.live import LiveGathering, nginx_facts

    gathered = LiveGathering(facts=nginx_facts(snap, docker_host))
    return rd.diagnose(snap, live=False, gathered=gathered).findings
