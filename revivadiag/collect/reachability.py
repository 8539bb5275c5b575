"""The ``reachability`` frame: every container x every other container's service ports.

From inside each source container's network namespace, the target's service name (its
container name when it has no service) is resolved at Docker's resolver and one TCP connect
is made: ``open``, ``refused``, ``timeout``, ``unresolvable`` or ``error``. Ports are the
target's exposed ports (``containers.exposed_ports``) plus its published container ports.

Names Docker does not know on the source's networks are asked once per network set (shared
with :mod:`revivadiag.collect.dns` through ``engine.name_cache``). For those pairs one L3
probe per (source network set, target network) goes to the target's address on that
network (taken from the endpoints frame) to show whether the path is really isolated:
the result is written into the ``error`` column of every row it stands for. Only the
project's own addresses are ever connected to.

Timeouts are short and probes concurrent; a refused connect is retried once (a restarting
service), a timeout is not (a dropped path would only time out again).

>>> port_list(["5432/tcp", "53/udp", "8000"])
[5432, 8000]
>>> tcp_job("database", 5432, 0.5, ["10.2.0.4"])["prefer_ips"]
['10.2.0.4']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from revivadiag.collect.dns import (
    NOT_ASKED,
    DnsPlan,
    Member,
    NetKey,
    NetworkView,
    dns_rows,
    forwarded_budget,
    forwarded_key,
    known_answers,
    plan_dns,
    resolve_shared,
    shared_answers,
    slow_first,
)
from revivadiag.engine.base import Progress
from revivadiag.engine.jobs import DOCKER_DNS, Job, Result
from revivadiag.schemas import to_frame

DEFAULT_TIMEOUT_S = 0.5
#: an isolation probe: a bridge answers (or refuses) in well under 1 ms, a dropped path never
L3_TIMEOUT_S = 0.25
L3_WORDS = {"timeout": "dropped (isolated)", "refused": "refused: routable, not isolated",
            "open": "open by IP: not isolated"}


def port_list(value: Any) -> list[int]:
    """TCP port numbers from ``exposed_ports`` entries such as ``'5432/tcp'``."""
    out: list[int] = []
    for spec in value if isinstance(value, (list, tuple)) else []:
        port, _, proto = str(spec).partition("/")
        if (proto or "tcp") == "tcp" and port.isdigit() and int(port) not in out:
            out.append(int(port))
    return out


def target_ports(containers: pd.DataFrame, ports: pd.DataFrame | None = None,
                 learned: Mapping[str, Sequence[int]] | None = None) -> dict[str, list[int]]:
    """Container name -> its service ports (exposed, plus published container ports, plus
    the ports its service was learned to listen on: ``learned`` service -> ports)."""
    out = {str(r["name"]): port_list(r["exposed_ports"]) for r in containers.to_dict("records")}
    for r in containers.to_dict("records"):
        plist = out[str(r["name"])]
        plist += [int(p) for p in (learned or {}).get(str(r["service"]), ()) if p not in plist]
    if ports is not None and not ports.empty:
        for r in ports.to_dict("records"):
            plist = out.setdefault(str(r["container"]), [])
            if str(r.get("protocol") or "tcp") == "tcp" and int(r["container_port"]) not in plist:
                plist.append(int(r["container_port"]))
    return {name: sorted(p) for name, p in out.items()}


def host_of(member: Member) -> str:
    """The name a client uses for a target: its service name, else its container name."""
    return member.service or member.name


@dataclass
class Cell:
    """One (source, target, port) of the matrix and where its answer comes from."""

    source: Member
    target: Member
    port: int
    job: tuple[str, int] | None = None
    l3: list[tuple[NetKey, str]] = field(default_factory=list)
    note: str = ""


@dataclass
class SweepPlan:
    """TCP jobs per source container, the matrix cells, and the L3 probes."""

    batches: dict[str, list[Job]] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    l3_jobs: dict[tuple[NetKey, str], tuple[str, int, str]] = field(default_factory=dict)

    def add(self, member: Member, job: Job) -> tuple[str, int]:
        jobs = self.batches.setdefault(member.container_id, [])
        jobs.append(job)
        return member.container_id, len(jobs) - 1


def unknown_names(view: NetworkView, ports: Mapping[str, list[int]],
                  cache: Mapping[tuple[NetKey, str], Result]) -> DnsPlan:
    """DNS jobs for target names unknown on a source's networks and not yet cached."""
    plan = DnsPlan(budget=forwarded_budget(cache))
    for source in view.members:
        if not source.running:
            continue
        for target in view.members:
            host = host_of(target)
            key = forwarded_key(source, host)
            if not (target is source or not ports.get(target.name)
                    or view.knows(source, host) or key in cache):
                plan.ask_once(source, host)
    return plan


def tcp_job(host: str, port: int, timeout_s: float, prefer: Sequence[str] = (),
            retries: int = 1) -> Job:
    """A sweep connect: short timeout, one retry on refused only."""
    return {"kind": "tcp", "host": host, "port": port, "timeout_s": timeout_s,
            "retries": retries, "retry_on": ["CONNECTION_REFUSED"], "server": DOCKER_DNS,
            "prefer_ips": list(prefer)}


def plan_sweep(view: NetworkView, ports: Mapping[str, list[int]],
               cache: Mapping[tuple[NetKey, str], Result], timeout_s: float) -> SweepPlan:
    """Every (source, target, port) cell: a connect by name, a cached failure, or a skip."""
    plan = SweepPlan()
    project_ips = {ip for m in view.members for ip in m.ips.values() if ip}
    for source in view.members:
        for target in view.members:
            if target is source:
                continue
            for port in ports.get(target.name, []):
                cell = Cell(source, target, port)
                plan.cells.append(cell)
                _plan_cell(plan, view, cell, cache, timeout_s, project_ips)
    return plan


def _plan_cell(plan: SweepPlan, view: NetworkView, cell: Cell,
               cache: Mapping[tuple[NetKey, str], Result], timeout_s: float,
               project_ips: set[str]) -> None:
    source, target, host = cell.source, cell.target, host_of(cell.target)
    prefer = [ip for net, ip in target.ips.items() if ip and net in source.netkey]
    if not source.running or view.knows(source, host):
        seen = cache.get((source.netkey, host), {}).get("answers") or []
        if source.running and seen:  # the dns collector resolved it on these networks
            ip = next((a for a in prefer if a in seen), seen[0])
            cell.job = plan.add(source, tcp_job(ip, cell.port, timeout_s))
        else:
            cell.job = plan.add(source, tcp_job(host, cell.port, timeout_s, prefer))
        return
    answer = cache.get(forwarded_key(source, host), {})
    ours = [ip for ip in answer.get("answers") or [] if ip in project_ips]
    if ours:  # Docker forwarded the name and it came back as one of our addresses
        cell.job = plan.add(source, tcp_job(ours[0], cell.port, timeout_s))
        return
    rep = view.representative(source.netkey)
    for net, ip in sorted(target.ips.items()):
        key = (source.netkey, net)
        if ip and rep is not None and key not in plan.l3_jobs:
            cid, index = plan.add(rep, tcp_job(ip, cell.port, min(timeout_s, L3_TIMEOUT_S),
                                               retries=0))
            plan.l3_jobs[key] = (cid, index, f"{rep.name} -> {ip}:{cell.port}")
        if ip and key in plan.l3_jobs:
            cell.l3.append(key)
    if not target.running:
        cell.note = f"target {target.name} is not running"


def cell_row(cell: Cell, plan: SweepPlan, results: Mapping[str, Sequence[Result]],
             cache: Mapping[tuple[NetKey, str], Result]) -> dict[str, Any]:
    """The ``reachability`` row of one cell."""
    row: dict[str, Any] = {
        "source": cell.source.name, "source_service": cell.source.service,
        "target": cell.target.name, "target_service": cell.target.service,
        "target_host": host_of(cell.target), "target_port": cell.port,
    }
    if cell.job is not None:
        res = results[cell.job[0]][cell.job[1]]
        row.update(target_ip=res.get("ip", ""), outcome=res.get("outcome") or "error",
                   connect_ms=res.get("connect_ms"), attempts=res.get("attempts", 0),
                   error_type=res.get("error_type", ""), error=res.get("error", ""),
                   method=res.get("method", ""))
        return row
    answer = cache.get(forwarded_key(cell.source, host_of(cell.target)), {})
    outcome = "unresolvable" if not answer.get("answers") else "error"
    rcode = answer.get("rcode") or NOT_ASKED
    why = ((f"{host_of(cell.target)}: {rcode} at the source's resolver" if rcode != NOT_ASKED
            else f"{host_of(cell.target)}: on none of the source's networks (not asked upstream)")
           if outcome == "unresolvable" else
           f"{host_of(cell.target)} resolved to {', '.join(answer['answers'])}, not a project "
           "address: not probed")
    parts = [why, *(l3_text(plan, results, key) for key in cell.l3)]
    if cell.note:
        parts.append(cell.note)
    row.update(target_ip="", outcome=outcome, connect_ms=None, attempts=0,
               error_type=answer.get("error_type") or "DNS_RESOLUTION_FAILED",
               error="; ".join(parts), method=answer.get("method", ""))
    return row


def l3_text(plan: SweepPlan, results: Mapping[str, Sequence[Result]],
            key: tuple[NetKey, str]) -> str:
    """'L3 probe a -> 10.0.2.2:5432 (front -> back): timeout, dropped (isolated)'."""
    cid, index, what = plan.l3_jobs[key]
    res = results[cid][index]
    outcome = str(res.get("outcome", ""))
    nets = "+".join(sorted(key[0])) or "no network"
    return (f"L3 probe {what} ({nets} -> {key[1]}): {outcome}"
            + (f", {L3_WORDS[outcome]}" if outcome in L3_WORDS else f" {res.get('error', '')}"))


def collect_reachability(engine: Any, containers: pd.DataFrame, endpoints: pd.DataFrame,
                         timeout_s: float = DEFAULT_TIMEOUT_S, ports: pd.DataFrame | None = None,
                         progress: Progress | None = None,
                         learned: Mapping[str, Sequence[int]] | None = None) -> pd.DataFrame:
    """The ``reachability`` frame (see the module docstring); ``engine`` is a ProbeEngine.

    ``learned``: service -> ports it listens on (the ``roles`` frame), probed too.
    """
    view = NetworkView.from_frames(containers, endpoints)
    plist = target_ports(containers, ports, learned)
    names = unknown_names(view, plist, engine.name_cache)
    if names.batches:
        resolve_shared(engine, view, names, progress)
    plan = plan_sweep(view, plist, engine.name_cache, timeout_s)
    slow = {cid for cid, _, _ in plan.l3_jobs.values()}
    results = (engine.run(slow_first(plan.batches, slow), progress, known=view.known())
               if plan.batches else {})
    rows = [cell_row(c, plan, results, engine.name_cache) for c in plan.cells]
    return to_frame("reachability", rows)


def merge_batches(first: Mapping[str, list[Job]], second: Mapping[str, list[Job]]
                  ) -> tuple[dict[str, list[Job]], dict[str, int]]:
    """Both plans' jobs per container in one batch, and where the second plan's start."""
    merged = {cid: list(jobs) for cid, jobs in first.items()}
    offsets: dict[str, int] = {}
    for cid, jobs in second.items():
        offsets[cid] = len(merged.get(cid, []))
        merged.setdefault(cid, []).extend(jobs)
    return merged, offsets


def split_results(results: Mapping[str, list[Result]], first: Mapping[str, list[Job]],
                  offsets: Mapping[str, int]) -> tuple[dict[str, list[Result]],
                                                      dict[str, list[Result]]]:
    """Inverse of :func:`merge_batches` for the results."""
    one = {cid: rows[:len(first.get(cid, []))] for cid, rows in results.items()}
    two = {cid: results[cid][offset:] for cid, offset in offsets.items()}
    return one, two


def collect_sweep(engine: Any, containers: pd.DataFrame, endpoints: pd.DataFrame,
                  timeout_s: float = DEFAULT_TIMEOUT_S, ports: pd.DataFrame | None = None,
                  progress: Progress | None = None,
                  learned: Mapping[str, Sequence[int]] | None = None,
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``dns`` and ``reachability`` frames from one probe run.

    Same rows as :func:`collect_dns` then :func:`collect_reachability`, but the forwarded
    lookups (slow: the upstream server throttles them) run while every local lookup,
    connect and L3 probe is made, instead of before them. A forwarded name that comes back
    as a project address gets its connects in a second, small run.
    """
    view = NetworkView.from_frames(containers, endpoints)
    plist = target_ports(containers, ports, learned)
    dplan = plan_dns(view, engine.name_cache)
    splan = plan_sweep(view, plist, engine.name_cache, timeout_s)
    batches, offsets = merge_batches(dplan.batches, splan.batches)
    slow = {cid for cid, _ in dplan.shared.values()} | {cid for cid, _, _ in
                                                          splan.l3_jobs.values()}
    results = (engine.run(slow_first(batches, slow), progress, known=view.known())
               if batches else {})
    dres, sres = split_results(results, dplan.batches, offsets)
    engine.name_cache.update(shared_answers(dplan, dres, view))
    engine.name_cache.update(dplan.skipped)
    for key, res in known_answers(view, dplan, dres).items():
        engine.name_cache.setdefault(key, res)
    rows = _sweep_rows(engine, view, splan, sres, timeout_s, progress)
    return (to_frame("dns", dns_rows(view, dplan, dres, engine.name_cache)),
            to_frame("reachability", rows))


def _sweep_rows(engine: Any, view: NetworkView, plan: SweepPlan,
                results: Mapping[str, list[Result]], timeout_s: float,
                progress: Progress | None) -> list[dict[str, Any]]:
    """Rows of every cell; cells whose forwarded name turned out ours are probed now."""
    redo = SweepPlan()
    project_ips = {ip for m in view.members for ip in m.ips.values() if ip}
    late: set[int] = set()
    for i, cell in enumerate(plan.cells):
        answer = engine.name_cache.get(forwarded_key(cell.source, host_of(cell.target)), {})
        if cell.job is None and any(ip in project_ips for ip in answer.get("answers") or []):
            cell.job, cell.l3 = None, []
            _plan_cell(redo, view, cell, engine.name_cache, timeout_s, project_ips)
            late.add(i)
    again = (engine.run(redo.batches, progress, known=view.known()) if redo.batches else {})
    return [cell_row(c, redo if i in late else plan, again if i in late else results,
                     engine.name_cache) for i, c in enumerate(plan.cells)]
