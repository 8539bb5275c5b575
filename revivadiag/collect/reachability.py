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
service), a timeout is not (a dropped path would only time out again). The connect times of
open rows are not the sweep's (hundreds of probes in flight inflate them many times over):
once a prober's batch is done, each of its open connects is repeated :data:`QUIET_SAMPLES`
times one at a time and ``connect_ms`` is their median (``sweep_connect_ms`` keeps the
sweep's).

Equivalent sources. Docker isolates by network: every container attached to the same set of
networks reaches a given target port alike. By default each target port is connected to
from one container per network set (its representative, see
:meth:`~revivadiag.collect.dns.NetworkView.connector`) and the other sources of that set
carry its result over (``measured_on`` names the container the connect was made from,
``inferred`` is true). ``full=True`` connects every cell from its own source, to the
target's addresses when its name does not resolve there (as a per-pair ``nc`` would try).

>>> port_list(["5432/tcp", "53/udp", "8000"])
[5432, 8000]
>>> tcp_job("database", 5432, 0.5, ["10.2.0.4"])["prefer_ips"]
['10.2.0.4']
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from revivadiag.collect.dns import (
    NOT_ASKED,
    DnsPlan,
    Expansion,
    Member,
    NetKey,
    NetworkView,
    forwarded_budget,
    forwarded_key,
    resolve_shared,
    slow_first,
)
from revivadiag.engine.base import Progress
from revivadiag.engine.jobs import DOCKER_DNS, Job, Result

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


#: connects per open sweep connect repeated one at a time once the prober's batch is done:
#: the ``connect_ms`` of open rows (and the topology's edge labels) is their median
QUIET_SAMPLES = 3
L3Key = tuple[Any, ...]


@dataclass
class Cell:
    """One (source, target, port) of the matrix and where its answer comes from: its own
    connect (``job``), the L3 probes standing for it (``l3``), or an equivalent cell whose
    result it carries over (``via``: same source networks, same target and port)."""

    source: Member
    target: Member
    port: int
    job: tuple[str, int] | None = None
    l3: list[L3Key] = field(default_factory=list)
    note: str = ""
    via: Cell | None = None


@dataclass
class SweepPlan:
    """TCP jobs per source container, the matrix rows, and the L3 probes.

    ``rows`` holds, per source in order, the *measured* cell answering each of its
    (target, port): the source's own cell, or that of the container standing for it (a
    carried-over row; no Cell object is made for it, the matrix is n² and the plan stays
    about linear). :attr:`cells` gives one Cell per row, carried ones with ``via`` set.
    """

    batches: dict[str, list[Job]] = field(default_factory=dict)
    rows: list[tuple[Member, list[Cell]]] = field(default_factory=list)
    l3_jobs: dict[L3Key, tuple[str, int, str]] = field(default_factory=dict)
    full: bool = False

    def add(self, member: Member, job: Job) -> tuple[str, int]:
        jobs = self.batches.setdefault(member.container_id, [])
        jobs.append(job)
        return member.container_id, len(jobs) - 1

    @property
    def cells(self) -> list[Cell]:
        """Every (source, target, port), in row order; carried-over ones name their ``via``."""
        return [cell if cell.source is source else
                Cell(source, cell.target, cell.port, note=cell.note, via=cell)
                for source, cells in self.rows for cell in cells]

    def counts(self) -> dict[str, int]:
        """Cells, connects planned (sweep and L3) and cells carried over or decided by a
        name lookup alone (no connect of their own)."""
        connects = sum(1 for jobs in self.batches.values() for j in jobs if j["kind"] == "tcp")
        cells = sum(len(c) for _, c in self.rows)
        carried = sum(1 for source, c in self.rows for cell in c if cell.source is not source)
        lookup_only = sum(1 for source, c in self.rows for cell in c
                          if cell.source is source and cell.job is None
                          and not (self.full and cell.l3))
        return {"cells": cells, "connects": connects, "carried_over": carried,
                "lookup_only": lookup_only, "inferred": carried + lookup_only,
                "namespaces": len(self.batches)}


def unknown_names(view: NetworkView, ports: Mapping[str, list[int]],
                  cache: Mapping[tuple[NetKey, str], Result], full: bool = False) -> DnsPlan:
    """DNS jobs for target names unknown on a probing source's networks and not yet cached."""
    plan = DnsPlan(budget=forwarded_budget(cache))
    for source in view.probers(full):
        for target in view.members:
            host = host_of(target)
            key = forwarded_key(source, host)
            if not (target is source or not ports.get(target.name)
                    or view.knows(source, host) or key in cache):
                plan.ask_once(source, host)
    return plan


def tcp_job(host: str, port: int, timeout_s: float, prefer: Sequence[str] = (),
            retries: int = 1, quiet: int = QUIET_SAMPLES) -> Job:
    """A sweep connect: short timeout, one retry on refused only; ``quiet`` uncontended
    repeats when open (see :func:`quiet_ms`)."""
    return {"kind": "tcp", "host": host, "port": port, "timeout_s": timeout_s,
            "retries": retries, "retry_on": ["CONNECTION_REFUSED"], "server": DOCKER_DNS,
            "prefer_ips": list(prefer), "quiet_samples": quiet}


def plan_sweep(view: NetworkView, ports: Mapping[str, list[int]],
               cache: Mapping[tuple[NetKey, str], Result], timeout_s: float,
               full: bool = False) -> SweepPlan:
    """Every (source, target, port) cell: a connect by name, a cached failure, or the result
    of the equivalent cell of its network set's representative (see
    :meth:`NetworkView.connector`). ``full``: every cell is connected from its own source
    (by address on each of the target's networks when the name does not resolve there)."""
    plan = SweepPlan(full=full)
    project_ips = {ip for m in view.members for ip in m.ips.values() if ip}
    measured: dict[tuple[str, str], list[Cell]] = {}

    def own(source: Member, target: Member) -> list[Cell]:
        key = (source.container_id, target.container_id)
        cells = measured.get(key)
        if cells is None:
            cells = measured[key] = []
            for port in ports.get(target.name, []):
                cell = Cell(source, target, port)
                _plan_cell(plan, view, cell, cache, timeout_s, project_ips)
                cells.append(cell)
        return cells

    targets = [t for t in view.members if ports.get(t.name)]
    for source in view.members:
        # NetworkView.connector's choice, made once per source: the representative, or
        # for a connect to the representative itself the second container of the set
        members = view.peers(source)
        rep = alt = source
        if not full and source.running and members:
            rep, alt = members[0], (members[1] if len(members) > 1 else source)
        row: list[Cell] = []
        for target in targets:
            if target is not source:
                row.extend(own(alt if target is rep else rep, target))
        plan.rows.append((source, row))
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
    # full: this cell's own L3 probe; else one per (network set, network), made by the
    # source measuring for its set (only those plan their cells)
    prober = source
    for net, ip in sorted(target.ips.items()):
        key: L3Key = ((source.netkey, net, source.container_id, target.container_id, cell.port)
                      if plan.full else (source.netkey, net) if source.netkey
                      else (source.netkey, net, source.container_id))
        if ip and key not in plan.l3_jobs:
            cid, index = plan.add(prober, tcp_job(ip, cell.port, min(timeout_s, L3_TIMEOUT_S),
                                                  retries=0, quiet=0))
            plan.l3_jobs[key] = (cid, index, f"{prober.name} -> {ip}:{cell.port}")
        if ip and key in plan.l3_jobs:
            cell.l3.append(key)
    if not target.running:
        cell.note = f"target {target.name} is not running"


def cell_row(cell: Cell, plan: SweepPlan, results: Mapping[str, Sequence[Result]],
             cache: Mapping[tuple[NetKey, str], Result]) -> dict[str, Any]:
    """The ``reachability`` row of one cell."""
    if cell.via is not None:
        return {**cell_row(cell.via, plan, results, cache), "source": cell.source.name,
                "source_service": cell.source.service, "inferred": True}
    row: dict[str, Any] = {
        "source": cell.source.name, "source_service": cell.source.service,
        "target": cell.target.name, "target_service": cell.target.service,
        "target_host": host_of(cell.target), "target_port": cell.port,
    }
    if cell.job is not None:
        res = results[cell.job[0]][cell.job[1]]
        sweep_ms = res.get("connect_ms")
        settled = quiet_ms(res)
        row.update(target_ip=res.get("ip", ""), outcome=res.get("outcome") or "error",
                   connect_ms=sweep_ms if settled is None else settled,
                   attempts=res.get("attempts", 0),
                   error_type=res.get("error_type", ""), error=res.get("error", ""),
                   method=res.get("method", ""), sweep_connect_ms=sweep_ms,
                   measured_on=cell.source.name, inferred=False)
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
    own = plan.full and bool(cell.l3)
    asked = "" if rcode == NOT_ASKED else str(answer.get("asked_from") or "")
    row.update(target_ip="", outcome=outcome, connect_ms=None, attempts=0,
               error_type=answer.get("error_type") or "DNS_RESOLUTION_FAILED",
               error="; ".join(parts), method=answer.get("method", ""), sweep_connect_ms=None,
               measured_on=cell.source.name if own else asked, inferred=not own)
    return row


def l3_text(plan: SweepPlan, results: Mapping[str, Sequence[Result]], key: L3Key) -> str:
    """'L3 probe a -> 10.0.2.2:5432 (front -> back): timeout, dropped (isolated)'."""
    cid, index, what = plan.l3_jobs[key]
    res = results[cid][index]
    outcome = str(res.get("outcome", ""))
    nets = "+".join(sorted(key[0])) or "no network"
    return (f"L3 probe {what} ({nets} -> {key[1]}): {outcome}"
            + (f", {L3_WORDS[outcome]}" if outcome in L3_WORDS else f" {res.get('error', '')}"))


def quiet_ms(result: Mapping[str, Any]) -> float | None:
    """The median of a connect's uncontended repeats (``quiet_ms``), None without any.

    >>> quiet_ms({"quiet_ms": [0.3, 0.1, 0.2]}), quiet_ms({"connect_ms": 21.0})
    (0.2, None)
    """
    times = [float(t) for t in result.get("quiet_ms") or []]
    return round(statistics.median(times), 3) if times else None


def collect_reachability(engine: Any, containers: pd.DataFrame, endpoints: pd.DataFrame,
                         timeout_s: float = DEFAULT_TIMEOUT_S, ports: pd.DataFrame | None = None,
                         progress: Progress | None = None,
                         learned: Mapping[str, Sequence[int]] | None = None,
                         full: bool = False) -> pd.DataFrame:
    """The ``reachability`` frame (see the module docstring); ``engine`` is a ProbeEngine.

    ``learned``: service -> ports it listens on (the ``roles`` frame), probed too.
    ``full``: every cell connected from its own source, nothing carried over.
    """
    view = NetworkView.from_frames(containers, endpoints)
    plist = target_ports(containers, ports, learned)
    names = unknown_names(view, plist, engine.name_cache, full)
    if names.batches:
        resolve_shared(engine, view, names, progress)
    plan = plan_sweep(view, plist, engine.name_cache, timeout_s, full)
    slow = {cid for cid, _, _ in plan.l3_jobs.values()}
    results = (engine.run(slow_first(plan.batches, slow), progress, known=view.known())
               if plan.batches else {})
    return sweep_expansion(plan, results, engine.name_cache).frame("reachability")


def sweep_expansion(plan: SweepPlan, results: Mapping[str, Sequence[Result]],
                    cache: Mapping[tuple[NetKey, str], Result]) -> Expansion:
    """:func:`cell_row` of every measured cell once; a carried-over row refers to its
    measured cell's row with its own source."""
    out = Expansion()
    index: dict[int, int] = {}
    for source, cells in plan.rows:
        take = []
        inferred = []
        for cell in cells:
            base = index.get(id(cell))
            if base is None:
                base = index[id(cell)] = len(out.bases)
                out.bases.append(cell_row(cell, plan, results, cache))
            take.append(base)
            inferred.append(cell.source is not source or bool(out.bases[base]["inferred"]))
        out.extend(take, source=[source.name] * len(take),
                   source_service=[source.service] * len(take), inferred=inferred)
    return out


def sweep_rows(plan: SweepPlan, results: Mapping[str, Sequence[Result]],
               cache: Mapping[tuple[NetKey, str], Result]) -> list[dict[str, Any]]:
    """:func:`cell_row` of every cell (carried-over cells copy their measured cell's row)."""
    return sweep_expansion(plan, results, cache).rows()
