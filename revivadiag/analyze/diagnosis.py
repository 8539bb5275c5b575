"""``diagnose(snapshot)``: policy, KPIs, config audit and findings of one snapshot.

This is the one call the diagnose runbook and ``revivadiag diagnose`` make::

    snap = rd.snapshot(project="shop")
    d = diagnose(snap, environment="production")
    d.findings            # id, severity, category, title, evidence, remediation
    d.exit_code           # 0 without an error finding, 1 with one

Everything works from the stack's roles (the snapshot's ``roles`` frame): the policy (written
in roles) is bound to the services holding them, the declared networks are the expectation
where it says nothing, and the live steps talk to whichever service is the proxy.

With ``live=True`` it also has :func:`revivadiag.collect.live.gather_live` talk to the
project's own proxy (on its published 127.0.0.1 port, else on its container's own address
from the engine host), bounded: ``requests`` proxied GETs for connection reuse, one page, one
echo, two preflights, one WebSocket, a burst of ``burst`` GETs; and read the proxy's nginx
configuration from its container. A live step that cannot run leaves a ``skip`` row or an
unmeasured KPI and a line in ``notes`` — never a crash.
Apart from that one call, this module does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from revivadiag.analyze.config_audit import AuditContext, audit, check_environment
from revivadiag.analyze.findings import build_findings
from revivadiag.analyze.kpis import compute_kpis
from revivadiag.analyze.policy import Policy, compare, load_policy
from revivadiag.analyze.proxy_audit import declared_watcher
from revivadiag.analyze.source_audit import audit_source
from revivadiag.analyze.swarm import swarm_findings
from revivadiag.collect.live_facts import ReuseMeasurement
from revivadiag.collect.roles import Roles, declared_networks
from revivadiag.collect.snapshot import Snapshot, records

if TYPE_CHECKING:
    from revivadiag.collect.live import LiveGathering


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
    reuse: ReuseMeasurement | None = None
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
    gathered: LiveGathering | None = None,
) -> Diagnosis:
    """Analyse ``snapshot`` for ``environment`` (development / production).

    ``compose``: the normalised compose dict (``docker compose config --format json``), whose
    declared networks are the expectation where the policy says nothing; without it, the
    networks the containers were attached to by Compose are.

    ``gathered``: the live facts already collected
    (:func:`revivadiag.collect.live.gather_live`); without them and with ``live``, they are
    collected here by that one call (``requests``, ``burst``, ``docker_host`` go to it).
    Everything else is pure.
    """
    env = check_environment(environment)
    pol = _policy(policy)
    roles = Roles.from_snapshot(snapshot)
    bound, problems = bind_policy(pol, roles)
    if roles.frame.empty:  # no service at all: nothing the policy could be missing
        problems = []
    notes: list[str] = [f"snapshot: {n}" for n in snapshot.meta.notes]
    if live and gathered is None:
        from revivadiag.collect.live import gather_live  # the only I/O, in collect

        gathered = gather_live(snapshot, roles, requests=requests, burst=burst,
                               docker_host=docker_host)
    reuse = gathered.reuse if gathered is not None else None
    facts = gathered.facts if gathered is not None else None
    notes += gathered.notes if gathered is not None else []
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
                              policy_problems=[(p, policy_severity) for p in problems],
                              extra=swarm_findings(snapshot))
    return Diagnosis(snapshot.project, env, findings, kpis, violations, checks, source, reuse,
                     pol.origin, notes, roles.frame, problems)
