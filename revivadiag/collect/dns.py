"""The ``dns`` frame: every project name asked of Docker's resolver from every container.

Each running container asks 127.0.0.11, from inside its own network namespace, for every
container name, service name and network alias of the project (short container ids, which
Docker also answers, are left out). Names are checked per container where Docker knows
them on the container's networks.

A name Docker does *not* know on a container's networks is forwarded to the upstream DNS
server, which is not ours and answers the same whichever network asked (every container
uses the engine's upstream servers). Such a name is asked once (per engine run, so at
most once per network), one query at a time, from the first container that does not know
it; that answer is reused on the other containers' rows (``from_cache``) and kept in
``engine.name_cache`` for the reachability sweep. Why not once per network: the upstream
here answers about 60 forwarded queries a second and drops the rest, so with 60 containers
on 4 networks, 360 lookups took 5-6 s where 90 take well under one. A container that is
not running gets rows with ``CONTAINER_NOT_FOUND``.

Equivalent containers. Docker's resolver answers every container attached to the same set
of user-defined networks alike: the view of names is per network, not per container. So by
default one *representative* per network set (the first running container by name) asks the
names, and the other containers of that set get its answers carried over: their rows say
``measured_on`` (the representative) and ``inferred`` (true). ``full=True`` asks from every
container (each row then says ``measured_on`` = its own source). A container attached to
no user-defined network (default bridge, ``network_mode: host`` or ``container:...``) is
always measured itself. Legacy ``links`` aliases,
the one per-container resolver entry Docker has, are not project names and are not asked.

>>> view = NetworkView.from_rows(
...     [{"container_id": "a1", "name": "p_web_1", "service": "web", "state": "running"},
...      {"container_id": "b2", "name": "p_db_1", "service": "db", "state": "running"}],
...     [{"container": "p_web_1", "network": "front", "ipv4": "10.0.1.2", "aliases": ["web"],
...       "dns_names": ["p_web_1", "web"]},
...      {"container": "p_db_1", "network": "back", "ipv4": "10.0.2.2", "aliases": ["db"],
...       "dns_names": ["p_db_1", "db"]}])
>>> view.knows(view.by_name["p_web_1"], "db"), view.knows(view.by_name["p_web_1"], "web")
(False, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from revivadiag.engine.base import Progress
from revivadiag.engine.jobs import DOCKER_DNS, Job, Result
from revivadiag.schemas import repeat_rows

BUILTIN_NETWORKS = frozenset({"bridge", "host", "none"})
#: cache key "network set" of forwarded answers: the upstream's, the same from any network
UPSTREAM: frozenset[str] = frozenset({"<upstream>"})
NAME_KINDS = ("container_name", "service", "alias")
#: names Docker answers itself: a local round trip (~0.5 ms); tries wait 0.25, 0.5, 1 s
DNS_TIMEOUT_S = 0.25
DNS_RETRIES = 2
#: names Docker forwards upstream: answered within ~5 ms here when answered at all, but the
#: upstream answers only ~75 a second and drops the rest, and a dropped one never answers
#: late: so the first try gives up early, later ones wait longer: 0.05, 0.1, 0.2, 0.4, 0.8 s
FORWARDED_TIMEOUT_S = 0.05
FORWARDED_RETRIES = 4
#: at most this many distinct names are forwarded to the upstream DNS server per run (per
#: ProbeEngine). The Docker API already shows that such a name is on none of the source's
#: networks; past the budget the name is not asked, and its rows say so (rcode NOT_ASKED).
FORWARDED_BUDGET = 16
NOT_ASKED = "NOT_ASKED"
NetKey = frozenset[str]


@dataclass
class Member:
    """One container as the probes see it: identity, state, networks and addresses."""

    container_id: str
    name: str
    service: str
    running: bool
    pid: int = 0
    ips: dict[str, str] = field(default_factory=dict)
    #: the user-defined networks it is attached to (what its resolver answers for)
    netkey: NetKey = frozenset()


@dataclass
class NetworkView:
    """Containers, their networks, and the names Docker's resolver answers on each network."""

    members: list[Member]
    visible: dict[str, set[str]]
    names: dict[str, str]
    reps: dict[NetKey, list[Member]] = field(default_factory=dict)

    @property
    def by_name(self) -> dict[str, Member]:
        return {m.name: m for m in self.members}

    def known(self) -> dict[str, tuple[str, int]]:
        """container id -> (name, pid), for ProbeEngine.run(known=...)."""
        return {m.container_id: (m.name, m.pid) for m in self.members}

    @classmethod
    def from_frames(cls, containers: pd.DataFrame, endpoints: pd.DataFrame) -> NetworkView:
        """Build the view from the ``containers`` and ``endpoints`` frames."""
        return cls.from_rows(containers.to_dict("records"), endpoints.to_dict("records"))

    @classmethod
    def from_rows(cls, containers: Iterable[Mapping[str, Any]],
                  endpoints: Iterable[Mapping[str, Any]]) -> NetworkView:
        """Build the view from row dicts (the frames' records)."""
        members = [Member(str(c["container_id"]), str(c["name"]), str(c.get("service") or ""),
                          str(c.get("state")) == "running", _int(c.get("pid")))
                   for c in containers]
        by_name = {m.name: m for m in members}
        short_ids = {m.container_id[:12] for m in members}
        visible: dict[str, set[str]] = {}
        names: dict[str, str] = {}
        for ep in endpoints:
            member = by_name.get(str(ep["container"]))
            if member is None:
                continue
            member.ips[str(ep["network"])] = str(ep.get("ipv4") or "")
            visible.setdefault(str(ep["network"]), set()).update(_list(ep.get("dns_names")))
            for alias in _list(ep.get("aliases")) + _list(ep.get("dns_names")):
                if alias not in short_ids:
                    names.setdefault(alias, "alias")
        for m in members:
            if m.service and names.get(m.service) != "container_name":
                names[m.service] = "service"
        for m in members:
            names[m.name] = "container_name"
        reps: dict[NetKey, list[Member]] = {}
        for m in sorted(members, key=lambda m: m.name):
            m.netkey = frozenset(n for n in m.ips if n not in BUILTIN_NETWORKS)
            if m.running:
                reps.setdefault(m.netkey, []).append(m)
        return cls(members, visible, dict(sorted(names.items())), reps)

    def knows(self, source: Member, name: str) -> bool:
        """True when Docker's resolver answers ``name`` itself on one of ``source``'s networks."""
        return any(name in self.visible.get(net, ()) for net in source.netkey)

    def representative(self, key: NetKey) -> Member | None:
        """The first running container (by name) attached to exactly the networks ``key``."""
        members = self.reps.get(key)
        return members[0] if members else None

    def peers(self, source: Member) -> list[Member]:
        """The running containers equivalent to ``source`` (itself included), by name: those
        attached to exactly its user-defined networks. A container on none (default bridge,
        ``network_mode: host`` or ``container:...``) is equivalent to no other: the API
        does not show whose namespace it shares."""
        return self.reps.get(source.netkey, []) if source.netkey else []

    def prober(self, source: Member, full: bool = False) -> Member:
        """The container whose namespace answers for ``source``'s name lookups: ``source``
        itself in full mode or when it is not running, else its network set's representative.
        """
        if full or not source.running:
            return source
        peers = self.peers(source)
        return peers[0] if peers else source

    def connector(self, source: Member, target: Member, full: bool = False) -> Member:
        """The container whose connect to ``target`` stands for ``source``'s: ``source`` in
        full mode or when not running; else its network set's representative, or — when the
        target *is* that representative — the second container of the set (the representative
        cannot stand for a connect to itself)."""
        if full or not source.running:
            return source
        for member in self.peers(source) or [source]:
            if member is not target:
                return member
        return source

    def probers(self, full: bool = False) -> list[Member]:
        """The running containers that probe at all (every running one in full mode)."""
        if full:
            return [m for m in self.members if m.running]
        return [m for key, ms in self.reps.items() for m in (ms[:2] if key else ms)]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _list(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def forwarded_key(source: Member, name: str) -> tuple[NetKey, str]:
    """Cache key of the answer ``source`` gets for a name Docker forwards upstream: shared by
    every container with a user-defined network (containers without one have no 127.0.0.11
    and get their own key)."""
    return (UPSTREAM if source.netkey else frozenset({source.container_id}), name)


@dataclass
class DnsPlan:
    """Jobs per source container, and which cache key each shared (forwarded) job answers."""

    batches: dict[str, list[Job]] = field(default_factory=dict)
    shared: dict[tuple[NetKey, str], tuple[str, int]] = field(default_factory=dict)
    #: forwarded queries this plan may still make (see FORWARDED_BUDGET)
    budget: int = FORWARDED_BUDGET
    #: forwarded names over the budget: not asked, with the result their rows carry
    skipped: dict[tuple[NetKey, str], Result] = field(default_factory=dict)

    def ask_once(self, source: Member, name: str) -> None:
        """Plan the one forwarded query of ``name`` (from ``source``) unless planned; past
        the budget, record it as not asked instead."""
        key = forwarded_key(source, name)
        if key in self.shared or key in self.skipped:
            return
        if self.budget > 0:
            self.budget -= 1
            self.add(source, name, shared=True)
        else:
            self.skipped[key] = not_asked(name)

    def ordered(self) -> dict[str, list[Job]]:
        """The batches, containers holding shared (slow, forwarded) queries first."""
        return slow_first(self.batches, {cid for cid, _ in self.shared.values()})

    def add(self, member: Member, name: str, shared: bool) -> None:
        jobs = self.batches.setdefault(member.container_id, [])
        if shared:
            self.shared[forwarded_key(member, name)] = (member.container_id, len(jobs))
        jobs.append({"kind": "dns", "name": name, "server": DOCKER_DNS, "forwarded": shared,
                     "timeout_s": FORWARDED_TIMEOUT_S if shared else DNS_TIMEOUT_S,
                     "retries": FORWARDED_RETRIES if shared else DNS_RETRIES})


def not_asked(name: str) -> Result:
    """The result recorded for a forwarded name over the budget (no query was sent)."""
    return {"kind": "dns", "name": name, "answers": [], "rcode": NOT_ASKED, "latency_ms": None,
            "error_type": "", "method": "api",
            "error": (f"on none of this container's networks (Docker API), so Docker would forward "
                      f"it to the host's DNS; not asked: forwarded lookups are capped at "
                      f"{FORWARDED_BUDGET} names per snapshot")}


def forwarded_budget(cache: Mapping[tuple[NetKey, str], Result]) -> int:
    """How many forwarded queries are left this run, given what the cache already holds."""
    asked = sum(1 for (key, _), res in cache.items()
                if key == UPSTREAM and res.get("rcode") != NOT_ASKED)
    return max(0, FORWARDED_BUDGET - asked)


def slow_first(batches: Mapping[str, list[Job]], slow: set[str]) -> dict[str, list[Job]]:
    """``batches`` reordered so that the containers in ``slow`` start in the first wave."""
    return {k: batches[k] for k in sorted(batches, key=lambda k: k not in slow)}


def plan_dns(view: NetworkView, cache: Mapping[tuple[NetKey, str], Result],
             full: bool = False) -> DnsPlan:
    """Queries of known names from each network set's representative (from every container
    with ``full``); one query of each forwarded name (within the run's budget of forwarded
    lookups). A stopped container gets its jobs too: the engine answers CONTAINER_NOT_FOUND.
    """
    plan = DnsPlan(budget=forwarded_budget(cache))
    forwarded: list[tuple[Member, str]] = []
    for source in view.members:
        if view.prober(source, full) is not source:
            continue  # carried over from its representative (dns_rows)
        for name in view.names:
            if not source.running or view.knows(source, name):
                plan.add(source, name, shared=False)
            elif forwarded_key(source, name) not in cache:
                forwarded.append((source, name))
    # service names first: they are what a misconfigured client would ask for
    for source, name in sorted(forwarded, key=lambda sn: (view.names[sn[1]] != "service", sn[1])):
        plan.ask_once(source, name)
    return plan


def shared_answers(plan: DnsPlan, results: Mapping[str, Sequence[Result]],
                   view: NetworkView) -> dict[tuple[NetKey, str], Result]:
    """The result of each shared query, labelled with the container that asked."""
    by_id = {m.container_id: m for m in view.members}
    out: dict[tuple[NetKey, str], Result] = {}
    for key, (cid, index) in plan.shared.items():
        out[key] = dict(results[cid][index], asked_from=by_id[cid].name)
    return out


@dataclass
class Expansion:
    """Rows as references to a few distinct ``bases`` (one per prober x name x how it was
    answered), with what differs per source: equivalent sources share their base rows."""

    bases: list[dict[str, Any]] = field(default_factory=list)
    take: list[int] = field(default_factory=list)
    per_row: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, base: int, **values: Any) -> None:
        self.take.append(base)
        for key, value in values.items():
            self.per_row.setdefault(key, []).append(value)

    def extend(self, bases: list[int], **values: list[Any]) -> None:
        """Many rows at once: ``values`` hold one list per column, as long as ``bases``."""
        self.take.extend(bases)
        for key, column in values.items():
            self.per_row.setdefault(key, []).extend(column)

    def rows(self) -> list[dict[str, Any]]:
        """Every row as a dict (list values copied)."""
        out = []
        for i, base in enumerate(self.take):
            row = {**self.bases[base], **{k: v[i] for k, v in self.per_row.items()}}
            row.update({k: list(v) for k, v in row.items() if isinstance(v, list)})
            out.append(row)
        return out

    def frame(self, name: str) -> pd.DataFrame:
        """The frame (schema ``name``), built column-wise: the bases once, then repeated."""
        return repeat_rows(name, self.bases, self.take, self.per_row)


def dns_expansion(view: NetworkView, plan: DnsPlan, results: Mapping[str, Sequence[Result]],
                  cache: Mapping[tuple[NetKey, str], Result]) -> Expansion:
    """One row per source container x project name; a container that did not ask (not its
    network set's representative) gets the answers of the one that did."""
    out = Expansion()
    shared_jobs = {(cid, i) for cid, i in plan.shared.values()}
    asked_by: dict[str, dict[str, tuple[int, Result]]] = {
        cid: {str(j["name"]): (i, r) for i, (j, r) in enumerate(
            zip(jobs, results.get(cid, []), strict=False))}
        for cid, jobs in plan.batches.items()}
    askers = {str(r.get("asked_from") or "") for r in cache.values()}
    memo: dict[tuple[int, bool, str], int] = {}
    templates: dict[tuple[str, str, NetKey], tuple[list[int], list[bool]]] = {}

    def template(source: Member, prober: Member) -> tuple[list[int], list[bool]]:
        """Base rows and ``inferred`` of ``source``'s rows, in name order."""
        take: list[int] = []
        inferred: list[bool] = []
        asked = asked_by.get(prober.container_id, {})
        for name, kind in view.names.items():
            hit = asked.get(name)
            local = hit is not None and (prober.container_id, hit[0]) not in shared_jobs
            cached = None if hit is not None else cache.get(forwarded_key(source, name))
            if hit is not None:
                result, asker = hit[1], prober.name
            elif cached is not None:
                result, asker = cached, str(cached.get("asked_from") or "")
            else:
                continue
            # from_cache: a forwarded (upstream) answer that another container asked for
            from_cache = not local and asker != source.name
            key = (id(result), from_cache, asker)
            base = memo.get(key)
            if base is None:  # equal rows of equivalent sources share the work
                base = memo[key] = len(out.bases)
                out.bases.append(dns_row(source, name, kind, result, from_cache, asker))
            take.append(base)
            inferred.append(out.bases[base]["measured_on"] != source.name)
        return take, inferred

    for source in view.members:
        prober = source if source.container_id in plan.batches else view.prober(source)
        # rows depend on the source itself only where it asked (or is named as asker)
        own = source.name if (prober is source or source.name in askers) else ""
        key = (prober.container_id, own, source.netkey)
        found = templates.get(key)
        if found is None:
            found = templates[key] = template(source, prober)
        take, inferred = found
        out.extend(take, source=[source.name] * len(take),
                   source_service=[source.service] * len(take), inferred=inferred)
    return out


def dns_rows(view: NetworkView, plan: DnsPlan, results: Mapping[str, Sequence[Result]],
             cache: Mapping[tuple[NetKey, str], Result]) -> list[dict[str, Any]]:
    """The rows of :func:`dns_expansion` as dicts."""
    return dns_expansion(view, plan, results, cache).rows()


def dns_row(source: Member, name: str, kind: str, result: Mapping[str, Any],
            from_cache: bool, measured_on: str | None = None) -> dict[str, Any]:
    """A ``dns`` row from one query result, asked from ``measured_on`` (default: the source;
    empty: not asked at all)."""
    error = str(result.get("error") or "")
    if from_cache and result.get("asked_from"):
        error = (error + "; " if error else "") + f"answer of {result['asked_from']} reused"
    where = source.name if measured_on is None else measured_on
    if result.get("rcode") == NOT_ASKED:
        where = ""
    return {"source": source.name, "source_service": source.service, "query": name,
            "query_kind": kind, "answers": list(result.get("answers") or []),
            "rcode": result.get("rcode", ""), "latency_ms": result.get("latency_ms"),
            "method": result.get("method", ""), "error_type": result.get("error_type", ""),
            "error": error, "from_cache": from_cache, "measured_on": where,
            "inferred": where != source.name}


def resolve_shared(engine: Any, view: NetworkView, plan: DnsPlan,
                   progress: Progress | None = None) -> dict[str, list[Result]]:
    """Run the plan; remember the answers of shared queries in ``engine.name_cache``."""
    results: dict[str, list[Result]] = (
        engine.run(plan.ordered(), progress, known=view.known()) if plan.batches else {})
    engine.name_cache.update(shared_answers(plan, results, view))
    engine.name_cache.update(plan.skipped)
    return results


def known_answers(view: NetworkView, plan: DnsPlan, results: Mapping[str, Sequence[Result]]
                  ) -> dict[tuple[NetKey, str], Result]:
    """(network set, name) -> an answer Docker gave itself there (the first resolved one):
    the reachability sweep connects to it instead of asking again (cached per network)."""
    out: dict[tuple[NetKey, str], Result] = {}
    shared = {loc for loc in plan.shared.values()}
    for source in view.members:
        if not source.running:
            continue
        jobs = plan.batches.get(source.container_id, [])
        for i, (job, res) in enumerate(zip(jobs, results.get(source.container_id, []),
                                           strict=False)):
            if (source.container_id, i) not in shared and res.get("answers"):
                out.setdefault((source.netkey, str(job["name"])), res)
    return out


def collect_dns(engine: Any, containers: pd.DataFrame, endpoints: pd.DataFrame,
                progress: Progress | None = None, full: bool = False) -> pd.DataFrame:
    """The ``dns`` frame (see the module docstring); ``engine`` is a ProbeEngine. ``full``:
    every container asks every name itself (nothing carried over from an equivalent one)."""
    view = NetworkView.from_frames(containers, endpoints)
    plan = plan_dns(view, engine.name_cache, full)
    results = resolve_shared(engine, view, plan, progress)
    for key, res in known_answers(view, plan, results).items():
        engine.name_cache.setdefault(key, res)
    return dns_expansion(view, plan, results, engine.name_cache).frame("dns")
