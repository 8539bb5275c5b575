"""``diagnose(snapshot)``: policy, KPIs, config audit and findings of one snapshot.

This is the one call the diagnose runbook and ``revivadiag diagnose`` make::

    snap = rd.snapshot(project="revivatech")
    d = diagnose(snap, environment="production")
    d.findings            # id, severity, category, title, evidence, remediation
    d.exit_code           # 0 without an error finding, 1 with one

With ``live=True`` it also talks to the project's own proxy on its published 127.0.0.1
port (bounded: ``requests`` proxied GETs for connection reuse, one page, one echo, two
preflights, one WebSocket, a burst of ``burst`` GETs) and reads the proxy's nginx
configuration from its container. A live step that cannot run leaves a ``skip`` row or an
unmeasured KPI and a line in ``notes`` — never a crash.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from revivadiag.analyze import live as live_mod
from revivadiag.analyze.config_audit import AuditContext, audit, check_environment
from revivadiag.analyze.findings import build_findings
from revivadiag.analyze.kpis import compute_kpis
from revivadiag.analyze.policy import Policy, compare, load_policy, resolve_service
from revivadiag.analyze.proxy_audit import declared_watcher
from revivadiag.analyze.source_audit import audit_source
from revivadiag.collect import connections
from revivadiag.collect.snapshot import Snapshot, records
from revivadiag.errors import RevivadiagError

DEFAULT_FRONTEND_PORT = 3010
DEFAULT_BACKEND_PORT = 3011


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
        if self.source_findings is not None:
            out["source_findings"] = records("source_findings", self.source_findings)
        return out


def _policy(policy: Policy | str | Path | None) -> Policy:
    if isinstance(policy, Policy):
        return policy
    return load_policy(policy)


def proxy_ports(policy: Policy) -> tuple[str, int, str, int]:
    """(proxy service, its container port, backend service, backend port) from the policy."""
    front = resolve_service("Frontend", policy.aliases, policy.origin, "services")
    back = resolve_service("Backend", policy.aliases, policy.origin, "services")
    fport = next((p.container_port for ports in policy.external.values() for p in ports
                  if p.service == front), DEFAULT_FRONTEND_PORT)
    bport = next((r.port for r in policy.rules if (r.source, r.target, r.action) ==
                  (front, back, "allow") and r.port), DEFAULT_BACKEND_PORT)
    return front, fport, back, bport


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


def _measure_reuse(snapshot: Snapshot, policy: Policy, client: Any, procfs: bool,
                   requests: int, notes: list[str]) -> connections.ReuseMeasurement | None:
    front, fport, back, bport = proxy_ports(policy)
    try:
        target = connections.target_from_frames(
            snapshot.containers, snapshot.endpoints, snapshot.ports, proxy_service=front,
            proxy_port=fport, backend_service=back, backend_port=bport)
    except RevivadiagError as exc:
        notes.append(f"connection reuse not measured: {exc}")
        return None
    if procfs:
        target = _current_pids(client, target)
        return connections.measure_reuse(target, requests)
    return connections.measure_reuse(target, requests, reader=connections.exec_table_reader(client),
                                     method="exec")


def _gather_live(snapshot: Snapshot, policy: Policy, client: Any, burst: int,
                 notes: list[str]) -> live_mod.LiveFacts | None:
    front, fport, _back, _bport = proxy_ports(policy)
    try:
        host_port = connections.loopback_port(snapshot.ports, front, fport)
    except RevivadiagError as exc:
        notes.append(f"live proxy checks skipped: {exc}")
        return None
    facts = live_mod.gather(f"http://127.0.0.1:{host_port}", burst_count=burst)
    _read_nginx(snapshot, front, client, facts)
    return facts


def _nginx_only(snapshot: Snapshot, policy: Policy, client: Any) -> live_mod.LiveFacts:
    facts = live_mod.LiveFacts(base_url="")
    _read_nginx(snapshot, proxy_ports(policy)[0], client, facts)
    return facts


def _read_nginx(snapshot: Snapshot, front: str, client: Any, facts: live_mod.LiveFacts) -> None:
    """The proxy container's nginx configuration into ``facts`` (through the engine's API)."""
    proxies = snapshot.containers[(snapshot.containers["service"] == front)
                                  & (snapshot.containers["state"] == "running")]
    if len(proxies):
        facts.nginx_files, facts.nginx_source = live_mod.read_nginx_config(
            client, str(proxies["name"].iloc[0]))
    else:
        facts.nginx_source = f"no running {front} container"


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
) -> Diagnosis:
    """Analyse ``snapshot`` for ``environment`` (development / production)."""
    env = check_environment(environment)
    pol = _policy(policy)
    notes: list[str] = [f"snapshot: {n}" for n in snapshot.meta.notes]
    reuse: connections.ReuseMeasurement | None = None
    facts: live_mod.LiveFacts | None = None
    if live:
        client, address, on_this_host = _engine(snapshot, docker_host)
        try:
            if on_this_host:
                reuse = _measure_reuse(snapshot, pol, client, os.geteuid() == 0, requests,
                                       notes)
                facts = _gather_live(snapshot, pol, client, burst, notes)
            else:  # 127.0.0.1 here is not the engine's host: only the API is used
                notes.append(f"live HTTP checks skipped: the engine at {address} is not on "
                             "this host, so its published ports are not on 127.0.0.1")
                facts = _nginx_only(snapshot, pol, client)
        finally:
            client.close()
    front = proxy_ports(pol)[0]
    ctx = AuditContext(environment=env, policy=pol, prefix=snapshot.project, live=facts,
                       watcher=declared_watcher(snapshot.env, snapshot.containers, front))
    violations = compare(pol, snapshot.reachability)
    checks = audit(snapshot.frames(), ctx)
    kpis = compute_kpis(snapshot.containers, snapshot.latency, snapshot.dns, reuse, startup_s)
    source = audit_source(source_path) if source_path is not None else None
    findings = build_findings(violations=violations, kpis=kpis, checks=checks,
                              health=snapshot.health, source_findings=source)
    return Diagnosis(snapshot.project, env, findings, kpis, violations, checks, source, reuse,
                     pol.origin, notes)
