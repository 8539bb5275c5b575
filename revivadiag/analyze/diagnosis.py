"""``diagnose(snapshot)``: policy, KPIs, config audit and findings of one snapshot.

This is the one call the diagnose runbook and ``revivadiag diagnose`` make::

    snap = rd.snapshot(project="shop")
    d = diagnose(snap, environment="production")
    d.findings            # id, severity, category, title, evidence, remediation
    d.exit_code           # 0 without an error finding, 1 with one

Everything works from the stack's roles (the snapshot's ``roles`` frame): the policy (written
in roles) is bound to the services holding them, the declared networks are the expectation
where it says nothing, and the live steps talk to whichever service is the proxy.

With ``live=True`` it also talks to the project's own proxy (on its published 127.0.0.1
port, else on its container's own address from the engine host), bounded: ``requests``
proxied GETs for connection reuse, one page, one echo, two preflights, one WebSocket, a
burst of ``burst`` GETs; and reads the proxy's nginx configuration from its container. A
live step that cannot run leaves a ``skip`` row or an unmeasured KPI and a line in ``notes``
— never a crash.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from revivadiag.analyze import live as live_mod
from revivadiag.analyze.config_audit import AuditContext, audit, check_environment
from revivadiag.analyze.findings import build_findings
from revivadiag.analyze.kpis import compute_kpis
from revivadiag.analyze.policy import Policy, compare, load_policy
from revivadiag.analyze.proxy_audit import declared_watcher
from revivadiag.analyze.source_audit import audit_source
from revivadiag.collect import connections
from revivadiag.collect.proxy_config import read_nginx_config, websocket_locations
from revivadiag.collect.roles import Roles, declared_networks
from revivadiag.collect.snapshot import Snapshot, records
from revivadiag.errors import RevivadiagError

#: proxies whose configuration is nginx's
NGINX_SOFTWARE = ("", "nginx", "openresty")


@dataclass
class Diagnosis:
    """The analysis frames of one snapshot, plus what the live steps measured."""

    project: str
    environment: str
    findings: pd.DataFrame
    kpis: pd.DataFrame
    violations: pd.DataFrame
    checks: pd.DataFrame
    source_findings: pd.DataFrame | None = None
    reuse: connections.ReuseMeasurement | None = None
    policy_origin: str = ""
    notes: list[str] = field(default_factory=list)
    #: the snapshot's roles (``roles`` frame) the analysis worked from
    roles: pd.DataFrame | None = None
    #: names in the policy that the stack lacks (each also a finding)
    policy_problems: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Findings per severity."""
        vc = self.findings["severity"].value_counts()
        return {s: int(vc.get(s, 0)) for s in ("error", "warning", "info")}

    @property
    def has_errors(self) -> bool:
        """True when any finding is an ``error``."""
        return self.counts()["error"] > 0

    @property
    def exit_code(self) -> int:
        """0 without an error finding, 1 with one."""
        return 1 if self.has_errors else 0

    def summary(self) -> dict[str, Any]:
        """Key values to record with a run (scrapbook glue, findings.json header)."""
        kpis = {str(r["kpi"]): (None if pd.isna(r["value"]) else round(float(r["value"]), 3))
                for r in self.kpis.to_dict("records")}
        return {
            "project": self.project,
            "environment": self.environment,
            "policy": self.policy_origin,
            "counts": self.counts(),
            "finding_ids": list(self.findings["id"]),
            "kpis": kpis,
            "connection_reuse_pct": None if self.reuse is None else self.reuse.reuse_pct,
            "notes": list(self.notes),
        }

    def to_json(self) -> dict[str, Any]:
        """Summary plus every frame as records (JSON-safe)."""
        out: dict[str, Any] = {"summary": self.summary()}
        for name in ("findings", "kpis", "violations", "checks"):
            out[name] = records(name, getattr(self, name))
        if self.roles is not None:
            out["roles"] = records("roles", self.roles)
        if self.source_findings is not None:
            out["source_findings"] = records("source_findings", self.source_findings)
        return out


def _policy(policy: Policy | str | Path | None) -> Policy:
    if isinstance(policy, Policy):
        return policy
    return load_policy(policy)


@dataclass(frozen=True)
class ProxyTarget:
    """The proxy and the backend of a stack, as the live steps use them."""

    proxy: str
    proxy_port: int
    backend: str
    backend_port: int
    path: str


def proxy_target(roles: Roles) -> ProxyTarget:
    """The services holding the proxy and backend roles, their ports and the learned path.

    ServiceNotFound-like :class:`~revivadiag.errors.RevivadiagError` naming what is missing.
    """
    from revivadiag.errors import ServiceNotFound

    proxy, backend = roles.service("proxy"), roles.service("backend")
    if proxy is None or backend is None:
        missing = " and ".join(r for r, s in (("proxy", proxy), ("backend", backend)) if not s)
        raise ServiceNotFound(f"{missing} (no service holds the role)",
                              sorted(roles.as_mapping()))
    pport, bport = roles.port(proxy), roles.port(backend)
    if pport is None or bport is None:
        raise ServiceNotFound(f"{proxy if pport is None else backend} (its port is unknown)")
    path = roles.http_path(proxy) or roles.http_path(backend) or "/"
    return ProxyTarget(proxy, pport, backend, bport, path)


def _engine(snapshot: Snapshot, docker_host: str | None) -> tuple[Any, str, bool]:
    """A client for the snapshot's engine, its address, and whether it runs on this host."""
    from revivadiag.engine.client import connect, engine_address, is_local_address

    address = docker_host or (snapshot.meta.engine_address
                              if "***" not in snapshot.meta.engine_address else None)
    address = engine_address(address or None)
    return connect(address), address, is_local_address(address)


def _current_pids(client: Any, target: connections.ReuseTarget) -> connections.ReuseTarget:
    """The target with today's init pids (a container restarted since the snapshot moved)."""
    import docker.errors

    def pid(name: str, old: int) -> int:
        try:
            return int(client.api.inspect_container(name)["State"]["Pid"] or 0)
        except (docker.errors.DockerException, KeyError, TypeError, ValueError):
            return old

    return replace(target, proxy_pid=pid(target.proxy_container, target.proxy_pid),
                   backend_pid=pid(target.backend_container, target.backend_pid))


def _measure_reuse(snapshot: Snapshot, roles: Roles, client: Any, procfs: bool,
                   requests: int, notes: list[str]) -> connections.ReuseMeasurement | None:
    try:
        t = proxy_target(roles)
        target = connections.target_from_frames(
            snapshot.containers, snapshot.endpoints, snapshot.ports, proxy_service=t.proxy,
            proxy_port=t.proxy_port, backend_service=t.backend, backend_port=t.backend_port,
            path=t.path)
    except RevivadiagError as exc:
        notes.append(f"connection reuse not measured: {exc}")
        return None
    if procfs:
        target = _current_pids(client, target)
        return connections.measure_reuse(target, requests)
    return connections.measure_reuse(target, requests, reader=connections.exec_table_reader(client),
                                     method="exec")


def _gather_live(snapshot: Snapshot, roles: Roles, client: Any, burst: int,
                 notes: list[str]) -> live_mod.LiveFacts | None:
    try:
        t = proxy_target(roles)
        base = connections.proxy_base_url(snapshot.containers, snapshot.endpoints,
                                          snapshot.ports, t.proxy, t.proxy_port)
    except RevivadiagError as exc:
        notes.append(f"live proxy checks skipped: {exc}")
        return None
    own = set(snapshot.endpoints[snapshot.endpoints["service"] == t.proxy]["ipv4"].astype(str))
    conf = live_mod.LiveFacts(base_url="")
    _read_nginx(snapshot, roles, client, conf)
    ws = websocket_locations(conf.nginx_files) if conf.nginx_files else []
    facts = live_mod.gather(base, burst_count=burst, health_path=t.path, allowed_hosts=own,
                            websocket_path=ws[0] if ws else None)
    facts.nginx_files, facts.nginx_source = conf.nginx_files, conf.nginx_source
    facts.backend_hosts = backend_hosts(snapshot, t.backend)
    return facts


def backend_hosts(snapshot: Snapshot, backend: str) -> frozenset[str]:
    """Every name and address the backend answers to (what a proxy_pass may name)."""
    eps = snapshot.endpoints[snapshot.endpoints["service"] == backend]
    names = {backend, *snapshot.containers[snapshot.containers["service"] == backend]["name"]}
    for rec in eps.to_dict("records"):
        names.update([*list(rec["aliases"]), *list(rec["dns_names"]), rec["ipv4"]])
    return frozenset(str(n).lower() for n in names if n)


def _nginx_only(snapshot: Snapshot, roles: Roles, client: Any) -> live_mod.LiveFacts:
    facts = live_mod.LiveFacts(base_url="")
    _read_nginx(snapshot, roles, client, facts)
    backend = roles.service("backend")
    if backend:
        facts.backend_hosts = backend_hosts(snapshot, backend)
    return facts


def _read_nginx(snapshot: Snapshot, roles: Roles, client: Any, facts: live_mod.LiveFacts) -> None:
    """The proxy container's nginx configuration into ``facts`` (through the engine's API)."""
    proxy = roles.service("proxy")
    if proxy is None:
        facts.nginx_source = "no service holds the role proxy"
        return
    software = roles.software(proxy)
    if software not in NGINX_SOFTWARE:
        facts.nginx_source = f"the proxy {proxy} runs {software}, not nginx"
        return
    proxies = snapshot.containers[(snapshot.containers["service"] == proxy)
                                  & (snapshot.containers["state"] == "running")]
    if len(proxies):
        facts.nginx_files, facts.nginx_source = read_nginx_config(
            client, str(proxies["name"].iloc[0]))
    else:
        facts.nginx_source = f"no running {proxy} container"


def bind_policy(policy: Policy, roles: Roles) -> tuple[Policy, list[str]]:
    """The policy applied to the services holding its roles, and what the stack lacks."""
    mapping = roles.as_mapping()
    return policy.bind(mapping, {s: roles.port(s) for s in mapping})


def diagnose(
    snapshot: Snapshot,
    *,
    environment: str = "development",
    policy: Policy | str | Path | None = None,
    live: bool = True,
    requests: int = 50,
    burst: int = 50,
    source_path: str | Path | None = None,
    startup_s: float | None = None,
    docker_host: str | None = None,
    compose: Mapping[str, Any] | None = None,
) -> Diagnosis:
    """Analyse ``snapshot`` for ``environment`` (development / production).

    ``compose``: the normalised compose dict (``docker compose config --format json``), whose
    declared networks are the expectation where the policy says nothing; without it, the
    networks the containers were attached to by Compose are.
    """
    env = check_environment(environment)
    pol = _policy(policy)
    roles = Roles.from_snapshot(snapshot)
    bound, problems = bind_policy(pol, roles)
    if roles.frame.empty:  # no service at all: nothing the policy could be missing
        problems = []
    notes: list[str] = [f"snapshot: {n}" for n in snapshot.meta.notes]
    reuse: connections.ReuseMeasurement | None = None
    facts: live_mod.LiveFacts | None = None
    if live:
        client, address, on_this_host = _engine(snapshot, docker_host)
        try:
            if on_this_host:
                reuse = _measure_reuse(snapshot, roles, client, os.geteuid() == 0, requests,
                                       notes)
                facts = _gather_live(snapshot, roles, client, burst, notes)
            else:  # 127.0.0.1 here is not the engine's host: only the API is used
                notes.append(f"live HTTP checks skipped: the engine at {address} is not on "
                             "this host, so its published ports are not on 127.0.0.1")
                facts = _nginx_only(snapshot, roles, client)
        finally:
            client.close()
    proxy = roles.service("proxy") or ""
    ctx = AuditContext(environment=env, policy=bound, prefix=snapshot.project, live=facts,
                       watcher=declared_watcher(snapshot.env, snapshot.containers, proxy),
                       roles=roles.as_mapping())
    declared = declared_networks(compose, snapshot.endpoints)
    violations = compare(bound, snapshot.reachability, declared)
    checks = audit(snapshot.frames(), ctx)
    kpis = compute_kpis(snapshot.containers, snapshot.latency, snapshot.dns, reuse, startup_s)
    source = audit_source(source_path) if source_path is not None else None
    policy_severity = "info" if pol.origin.startswith("<default") else "warning"
    findings = build_findings(violations=violations, kpis=kpis, checks=checks,
                              health=snapshot.health, source_findings=source,
                              roles=roles.problems(),
                              policy_problems=[(p, policy_severity) for p in problems])
    return Diagnosis(snapshot.project, env, findings, kpis, violations, checks, source, reuse,
                     pol.origin, notes, roles.frame, problems)
