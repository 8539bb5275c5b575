"""Roles learned from the stack: which service is the proxy, the backend, a database, ...

Every consumer (latency, health, connection reuse, the proxy audit, the policy, KPIs) asks
:class:`Roles` for a role's services and ports instead of naming services. The ``roles``
frame has one row per service; :func:`infer_roles` decides it from plain facts, in this
order (the first that decides wins, later evidence is still quoted):

1. an explicit declaration: the container label ``revivadiag.role=<role>``, or the compose
   service's ``labels`` / ``x-revivadiag: {role: <role>}`` extension (confidence ``high``);
2. the policy's ``roles:`` section (role -> service names; ``high``);
3. the software it runs: image repository name and process commands, matched word by word
   (nginx, traefik, haproxy, caddy, envoy -> proxy; postgres, mysql, mariadb, mongo ->
   database; redis, valkey, memcached -> cache; ``high``);
4. a well-known port it listens on (5432, 3306, 27017 -> database; 6379, 11211 -> cache;
   ``medium``);
5. the proxy's configuration: the service its ``/api`` location (else its only, or most
   specific, upstream) forwards to is the backend, with that ``proxy_pass`` port; other
   upstreams are ``other`` (``high`` for ``/api``, ``medium`` otherwise);
6. who talks to whom (ESTABLISHED sockets): the service the proxy connects to is the backend
   (of several, the one that uses a database or cache); one that listens on nothing and
   connects to a database or cache is a ``worker`` (``medium``);
7. the seed's service names (:mod:`revivadiag.seed`), only when nothing else spoke (``low``);
8. otherwise ``other`` with ``decided_by`` ``none``: undecided (``low``).

``confidence`` is ``high`` (declared, or the software itself), ``medium`` (inferred from
ports, routes or traffic) or ``low`` (a guess). ``ambiguous`` is true when two services are
equally good candidates for a role only one should hold (two proxies, two backends); the
``alternatives`` column names the others.

>>> import pandas as pd
>>> from revivadiag import schemas
>>> containers = schemas.to_frame("containers", [
...     {"name": "shop-proxy-1", "service": "proxy", "image": "nginx:1.25", "state": "running"},
...     {"name": "shop-api-1", "service": "api", "image": "shop/api", "state": "running"},
...     {"name": "shop-db-1", "service": "db", "image": "postgres:16", "state": "running"}])
>>> roles = Roles(infer_roles(containers, listening={"proxy": [80], "api": [8000],
...     "db": [5432]}, routes=[ProxyRoute("proxy", "/api/", "api", 8000)]))
>>> roles.service("backend"), roles.port("api"), roles.role("db"), roles.service("cache")
('api', 8000, 'database', None)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from revivadiag import seed
from revivadiag.schemas import to_frame

ROLES = ("proxy", "backend", "database", "cache", "worker", "other")
#: roles one stack should give a single service: two candidates make the role ambiguous
SINGLE_ROLES = ("proxy", "backend")
CONFIDENCES = ("high", "medium", "low")
ROLE_LABEL = "revivadiag.role"
COMPOSE_EXTENSION = "x-revivadiag"

#: software word -> role (matched against whole words of image names and process commands)
SOFTWARE: dict[str, str] = {
    **dict.fromkeys(("nginx", "openresty", "traefik", "haproxy", "caddy", "envoy"), "proxy"),
    **dict.fromkeys(("postgres", "postgresql", "postgis", "timescaledb", "mysql", "mysqld",
                     "mariadb", "mariadbd", "mongo", "mongod", "mongodb"), "database"),
    **dict.fromkeys(("redis", "valkey", "memcached", "keydb"), "cache"),
}
#: words that make an image a tool *for* that software, not the software itself
TOOL_WORDS = frozenset({"exporter", "commander", "insight", "admin", "adminer", "pgadmin",
                        "backup", "migrate", "migrations", "operator", "ui", "cli", "client",
                        "proxy-manager", "dashboard", "bouncer", "pgbouncer"})
#: well-known listening ports -> role (only when nothing stronger decides)
PORT_ROLES: dict[int, str] = {p: r for r, ports in seed.ROLE_DEFAULT_PORTS.items() for p in ports}
#: locations whose upstream is the backend
API_LOCATION = re.compile(r"^[=~^*\s]*/api(?:/|$|[-_.?])")
_WORD = re.compile(r"[A-Za-z0-9]+")
_CONF_RANK = {c: i for i, c in enumerate(CONFIDENCES)}


@dataclass(frozen=True)
class ProxyRoute:
    """A proxy forwards ``location`` to ``host`` (a name or address) on ``port``."""

    proxy: str
    location: str
    host: str
    port: int | None = None


@dataclass(frozen=True)
class Edge:
    """An established TCP connection from ``source`` to ``target``'s ``port``."""

    source: str
    target: str
    port: int


@dataclass
class _Decision:
    role: str = ""
    confidence: str = "low"
    decided_by: str = "none"
    software: str = ""
    port: int | None = None
    route: str = ""
    evidence: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)
    ambiguous: bool = False

    def decide(self, role: str, confidence: str, by: str, why: str) -> None:
        self.role, self.confidence, self.decided_by = role, confidence, by
        self.evidence.insert(0, why)


# ---------------------------------------------------------------- words


def image_words(image: str) -> list[str]:
    """The words of an image's repository name (registry, tag and digest dropped).

    >>> image_words("registry.example:5000/library/redis-stack:7.2@sha256:ab12")
    ['redis-stack', 'redis', 'stack']
    """
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    name = last.split(":", 1)[0].lower()
    return [name, *[w for w in _WORD.findall(name) if w != name]]


def command_words(command: str) -> list[str]:
    """The program of a process command line, as words (``nginx: master process`` -> nginx).

    >>> command_words("/usr/lib/postgresql/15/bin/postgres -D /data")
    ['postgres']
    >>> command_words("redis-server 0.0.0.0:6379")
    ['redis-server', 'redis', 'server']
    """
    parts = command.strip().split()
    if not parts:
        return []
    prog = parts[0].rsplit("/", 1)[-1].rstrip(":").lower()
    return [prog, *[w for w in _WORD.findall(prog) if w != prog]]


def software_of(words: Sequence[str]) -> tuple[str, str] | None:
    """(role, software word) of the first software word, unless the name is a tool for it.

    >>> software_of(image_words("postgres:16")), software_of(image_words("redis-exporter"))
    (('database', 'postgres'), None)
    """
    if any(w in TOOL_WORDS for w in words):
        return None
    for w in words:
        if w in SOFTWARE:
            return SOFTWARE[w], w
    return None


# ---------------------------------------------------------------- explicit declarations


def _label_pairs(labels: object) -> dict[str, str]:
    if isinstance(labels, Mapping):
        return {str(k): str(v) for k, v in labels.items()}
    if isinstance(labels, list):  # compose's list form: ["key=value", ...]
        return dict(str(item).partition("=")[::2] for item in labels)
    if isinstance(labels, str):
        try:
            data = json.loads(labels or "{}")
        except ValueError:
            return {}
        return _label_pairs(data) if isinstance(data, Mapping) else {}
    return {}


def compose_roles(compose: Mapping[str, Any] | None) -> dict[str, tuple[str, str]]:
    """service -> (declared role, where) from a normalised compose dict.

    Reads ``services.<name>.x-revivadiag.role`` and the ``revivadiag.role`` label (mapping
    or ``key=value`` list form), i.e. what ``docker compose config --format json`` gives.

    >>> compose_roles({"services": {"api": {"x-revivadiag": {"role": "backend"}},
    ...                             "q": {"labels": ["revivadiag.role=worker"]}}})
    {'api': ('backend', 'x-revivadiag.role'), 'q': ('worker', 'label revivadiag.role')}
    """
    out: dict[str, tuple[str, str]] = {}
    services = (compose or {}).get("services") or {}
    if not isinstance(services, Mapping):
        return out
    for name, spec in services.items():
        if not isinstance(spec, Mapping):
            continue
        ext = spec.get(COMPOSE_EXTENSION)
        if isinstance(ext, Mapping) and ext.get("role"):
            out[str(name)] = (str(ext["role"]).strip().lower(), f"{COMPOSE_EXTENSION}.role")
            continue
        label = _label_pairs(spec.get("labels")).get(ROLE_LABEL)
        if label:
            out[str(name)] = (label.strip().lower(), f"label {ROLE_LABEL}")
    return out


def declared_networks(compose: Mapping[str, Any] | None,
                      endpoints: pd.DataFrame | None = None) -> dict[str, set[str]]:
    """service -> the networks it is declared on: the compose file's, else the endpoints'.

    A compose service without ``networks`` is on ``default``; ``network_mode`` services
    share nothing by declaration.

    >>> nets = declared_networks({"services": {"a": {}, "b": {"networks": {"x": None}},
    ...                                        "c": {"networks": ["x", "y"]}}})
    >>> {k: sorted(v) for k, v in nets.items()}
    {'a': ['default'], 'b': ['x'], 'c': ['x', 'y']}
    """
    services = (compose or {}).get("services") if compose else None
    out: dict[str, set[str]] = {}
    if isinstance(services, Mapping) and services:
        for name, spec in services.items():
            spec = spec if isinstance(spec, Mapping) else {}
            if spec.get("network_mode"):
                out[str(name)] = set()
                continue
            nets = spec.get("networks")
            out[str(name)] = {str(n) for n in nets} if nets else {"default"}
        return out
    if endpoints is not None and len(endpoints):
        for rec in endpoints.to_dict("records"):
            out.setdefault(str(rec["service"]), set()).add(str(rec["network"]))
    return out


# ---------------------------------------------------------------- inference


def _names(containers: pd.DataFrame, endpoints: pd.DataFrame | None) -> dict[str, str]:
    """Every name or address a proxy may use for a service -> that service."""
    out: dict[str, str] = {}
    for rec in containers.to_dict("records"):
        out[str(rec["name"]).lower()] = str(rec["service"])
        out.setdefault(str(rec["service"]).lower(), str(rec["service"]))
    if endpoints is not None:
        for rec in endpoints.to_dict("records"):
            svc = str(rec["service"])
            for n in [*list(rec["aliases"]), *list(rec["dns_names"]), rec["ipv4"]]:
                if n:
                    out.setdefault(str(n).lower(), svc)
    return out


def _explicit(services: list[str], containers: pd.DataFrame,
              compose: Mapping[str, Any] | None, policy_roles: Mapping[str, Sequence[str]],
              d: dict[str, _Decision]) -> None:
    declared = compose_roles(compose)
    for rec in containers.to_dict("records"):
        role = _label_pairs(rec.get("labels")).get(ROLE_LABEL)
        if role:
            declared.setdefault(str(rec["service"]),
                                (role.strip().lower(), f"container label {ROLE_LABEL}"))
    by_policy = {str(s): r for r, names in policy_roles.items() for s in names}
    for svc in services:
        if svc in declared:
            role, where = declared[svc]
            if role in ROLES:
                d[svc].decide(role, "high", "declared", f"{where}={role}")
                continue
            d[svc].evidence.append(f"{where}={role} is not a role ({', '.join(ROLES)}); ignored")
        if svc in by_policy and by_policy[svc] in ROLES:
            d[svc].decide(by_policy[svc], "high", "policy", f"policy roles: {by_policy[svc]}")


def _software(services: list[str], containers: pd.DataFrame,
              processes: Mapping[str, Sequence[str]], d: dict[str, _Decision]) -> None:
    images = {str(r["service"]): str(r["image"] or "") for r in containers.to_dict("records")}
    for svc in services:
        found = software_of(image_words(images.get(svc, "")))
        how = f"image {images.get(svc, '')}"
        if found is None:
            for cmd in processes.get(svc, ()):
                found = software_of(command_words(cmd))
                if found is not None:
                    how = f"process {found[1]}"
                    break
        if found is None:
            continue
        role, word = found
        d[svc].software = word
        if d[svc].role:
            d[svc].evidence.append(f"{how} ({word}: {role})")
        else:
            d[svc].decide(role, "high", "software", f"{how} runs {word}")


def _by_port(services: list[str], listening: Mapping[str, Sequence[int]],
             d: dict[str, _Decision]) -> None:
    for svc in services:
        if d[svc].role:
            continue
        hits = [(p, PORT_ROLES[p]) for p in listening.get(svc, ()) if p in PORT_ROLES]
        if hits:
            port, role = hits[0]
            d[svc].decide(role, "medium", "port", f"listens on {port} ({role}'s usual port)")


def _demote_extra_proxies(routes: Sequence[ProxyRoute], edges: Sequence[Edge],
                          resolve: Mapping[str, str], d: dict[str, _Decision]) -> None:
    """A proxy that another proxy forwards to serves an app behind it: ``other``."""
    proxies = [s for s, x in d.items() if x.role == "proxy" and x.decided_by == "software"]
    if len(proxies) < 2:
        return
    behind: dict[str, str] = {}
    for r in routes:
        target = resolve.get(r.host.lower())
        if r.proxy in proxies and target in proxies and target != r.proxy:
            behind[target] = r.proxy
    for e in edges:
        if e.source in proxies and e.target in proxies and e.target != e.source:
            behind.setdefault(e.target, e.source)
    for svc, front in behind.items():
        if front not in behind:
            d[svc].decide("other", "medium", "proxy",
                          f"{front} forwards to it: an app behind the proxy")


def _pick_backend(routes: Sequence[ProxyRoute], resolve: Mapping[str, str],
                  d: dict[str, _Decision]) -> tuple[list[str], dict[str, ProxyRoute], str]:
    """(backend candidates, service -> its route, why) from the proxies' routes."""
    proxies = {s for s, x in d.items() if x.role == "proxy"}
    by_target: dict[str, list[ProxyRoute]] = {}
    for r in routes:
        target = resolve.get(r.host.lower())
        if r.proxy in proxies and target is not None and target not in proxies:
            by_target.setdefault(target, []).append(r)
    if not by_target:
        return [], {}, ""
    best = {t: min(rs, key=lambda r: len(r.location)) for t, rs in by_target.items()}
    api = {t: min(api_rs, key=lambda r: len(r.location)) for t, rs in by_target.items()
           if (api_rs := [r for r in rs if API_LOCATION.match(r.location)])}
    best.update(api)
    if api:
        shortest = min(len(r.location) for r in api.values())
        cands = sorted(t for t, r in api.items() if len(r.location) == shortest)
        return cands, best, "api"
    if len(best) == 1:
        return list(best), best, "only"
    non_root = {t: r for t, r in best.items() if r.location.strip("=~^* ") not in ("/", "")}
    longest = max((len(r.location) for r in non_root.values()), default=0)
    cands = sorted(t for t, r in non_root.items() if len(r.location) == longest)
    return cands or sorted(best), best, "specific"


def _routes_and_traffic(services: list[str], routes: Sequence[ProxyRoute],
                        edges: Sequence[Edge], listening: Mapping[str, Sequence[int]],
                        resolve: Mapping[str, str], d: dict[str, _Decision]) -> None:
    cands, best, how = _pick_backend(routes, resolve, d)
    free = [c for c in cands if d[c].decided_by in ("none", "port") or d[c].role == "backend"]
    if free:
        for svc in free:
            r = best[svc]
            d[svc].port, d[svc].route = r.port, r.location
            why = (f"{r.proxy} forwards {r.location} to {r.host}"
                   + (f":{r.port}" if r.port else ""))
            if d[svc].role == "backend":
                d[svc].evidence.append(why)
            else:
                d[svc].decide("backend", "high" if how == "api" else "medium", "proxy", why)
        _mark_ambiguous(free, "backend", d)
    for svc, r in best.items():
        d[svc].route = d[svc].route or r.location
        if svc not in cands and not d[svc].role:
            d[svc].decide("other", "medium", "proxy",
                          f"{r.proxy} forwards {r.location} to it (an app, not the API)")
    proxies = {s for s, x in d.items() if x.role == "proxy"}
    stores = {s for s, x in d.items() if x.role in ("database", "cache")}
    if not any(x.role == "backend" for x in d.values()):
        talked = sorted({e.target for e in edges if e.source in proxies
                         and e.target not in proxies and not d[e.target].role})
        users = [s for s in talked if any(e.source == s and e.target in stores for e in edges)]
        if len(talked) > 1 and len(users) == 1:  # the one behind the proxy that uses the data
            for svc in talked:
                if svc != users[0]:
                    d[svc].decide("other", "medium", "traffic",
                                  "the proxy connects to it, but it uses no database or cache")
            talked = users
        for svc in talked:
            port = next(e.port for e in edges if e.source in proxies and e.target == svc)
            d[svc].port = port
            d[svc].decide("backend", "medium", "traffic",
                          f"the proxy has connections to it on {port}")
        _mark_ambiguous(talked, "backend", d)
    for svc in services:
        if d[svc].role or svc not in listening or listening[svc]:
            continue
        used = sorted({e.target for e in edges if e.source == svc and e.target in stores})
        if used:
            d[svc].decide("worker", "medium", "traffic",
                          f"listens on no port and connects to {', '.join(used)}")
    if not proxies and not any(x.role == "backend" for x in d.values()):
        servers = sorted({e.source for e in edges if e.target in stores
                          and not d[e.source].role and listening.get(e.source)})
        for svc in servers:
            d[svc].decide("backend", "medium", "traffic",
                          "listens and connects to the database/cache (no proxy in front)")
        _mark_ambiguous(servers, "backend", d)


def _mark_ambiguous(services: Sequence[str], role: str, d: dict[str, _Decision]) -> None:
    if len(services) < 2:
        return
    for svc in services:
        d[svc].ambiguous = True
        d[svc].confidence = "low"
        d[svc].alternatives = [f"{o} as {role}" for o in services if o != svc]


def _fallbacks(services: list[str], listening: Mapping[str, Sequence[int]],
               d: dict[str, _Decision]) -> None:
    for svc in services:
        if d[svc].role:
            continue
        if svc in seed.ROLE_OF_SERVICE:
            role = seed.ROLE_OF_SERVICE[svc]
            d[svc].decide(role, "low", "seed", f"named like the seed's {role} service; "
                                                 "nothing else decided")
            continue
        ports = listening.get(svc)
        what = ("listens on " + ", ".join(map(str, ports)) if ports else
                "listens on no port" if ports is not None else "its ports are unknown")
        d[svc].decide("other", "low", "none", f"undecided: {what}; no label, image, "
                                               "route or traffic names its role")
    for role in SINGLE_ROLES:
        holders = [s for s in services if d[s].role == role and not d[s].ambiguous]
        if len(holders) > 1 and len({d[s].decided_by for s in holders}) == 1:
            _mark_ambiguous(holders, role, d)


def _ports(svc: str, rec: Mapping[str, Any] | None, listening: Mapping[str, Sequence[int]],
           dec: _Decision) -> tuple[list[int], str]:
    if svc in listening:
        ports, where = sorted(set(listening[svc])), "listening"
    else:
        from revivadiag.collect.reachability import port_list

        ports, where = sorted(set(port_list(rec.get("exposed_ports") if rec else None))), \
            "exposed"
    if dec.port is not None and dec.port not in ports:
        ports.append(dec.port)
    if not ports and dec.role in seed.ROLE_DEFAULT_PORTS:
        ports, where = [seed.ROLE_DEFAULT_PORTS[dec.role][0]], "the role's usual port"
    return ports, where


def infer_roles(
    containers: pd.DataFrame,
    *,
    endpoints: pd.DataFrame | None = None,
    listening: Mapping[str, Sequence[int]] | None = None,
    processes: Mapping[str, Sequence[str]] | None = None,
    routes: Sequence[ProxyRoute] = (),
    edges: Sequence[Edge] = (),
    compose: Mapping[str, Any] | None = None,
    policy_roles: Mapping[str, Sequence[str]] | None = None,
    health_paths: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The ``roles`` frame from plain facts (see the module doc for the order of evidence).

    ``listening``: service -> TCP ports it listens on (a service missing from it: unknown);
    ``processes``: service -> command lines; ``routes``: what the proxies forward where;
    ``edges``: established connections between services; ``compose``: the normalised compose
    dict; ``policy_roles``: role -> services from the policy; ``health_paths``: service ->
    the HTTP path of its own healthcheck.
    """
    listening = listening or {}
    services = sorted({str(s) for s in containers["service"] if s})
    d = {s: _Decision() for s in services}
    resolve = _names(containers, endpoints)
    _explicit(services, containers, compose, policy_roles or {}, d)
    _software(services, containers, processes or {}, d)
    _by_port(services, listening, d)
    _demote_extra_proxies(routes, edges, resolve, d)
    _routes_and_traffic(services, routes, edges, listening, resolve, d)
    _fallbacks(services, listening, d)
    first = {str(r["service"]): r for r in containers.to_dict("records")}
    rows = []
    for svc in services:
        dec = d[svc]
        ports, where = _ports(svc, first.get(svc), listening, dec)
        main = dec.port if dec.port is not None else (ports[0] if ports else None)
        ordered = [main, *[p for p in ports if p != main]] if main is not None else ports
        evidence = "; ".join(dict.fromkeys(dec.evidence))
        if ordered:
            evidence += f"; ports {', '.join(map(str, ordered))} ({where})"
        rows.append({"service": svc, "role": dec.role, "port": main, "ports": ordered,
                     "software": dec.software, "decided_by": dec.decided_by,
                     "evidence": evidence, "confidence": dec.confidence,
                     "ambiguous": dec.ambiguous, "alternatives": "; ".join(dec.alternatives),
                     "route": dec.route, "http_path": (health_paths or {}).get(svc, "")})
    return to_frame("roles", rows)


# ---------------------------------------------------------------- the accessor


class Roles:
    """Who holds which role, and on which port: what every consumer asks instead of a name.

    >>> r = Roles.from_rows([{"service": "a", "role": "database", "port": 5432,
    ...                       "ports": [5432], "confidence": "high"}])
    >>> r.services("database"), r.service("proxy"), r.port("a"), r.role("b")
    (['a'], None, 5432, None)
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    @property
    def frame(self) -> pd.DataFrame:
        """The ``roles`` frame (its rows are read once, when it is set: lookups are dicts)."""
        return self._frame

    @frame.setter
    def frame(self, frame: pd.DataFrame) -> None:
        self._frame = frame
        self._records: list[dict[str, Any]] = frame.to_dict("records")
        self._by_service: dict[str, dict[str, Any]] = {}
        for rec in self._records:
            self._by_service.setdefault(str(rec["service"]), rec)

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> Roles:
        """Roles from row dicts (missing columns filled)."""
        return cls(to_frame("roles", [dict(r) for r in rows]))

    @classmethod
    def from_snapshot(cls, snap: Any) -> Roles:
        """The snapshot's ``roles`` frame, or roles inferred from its API frames when it
        has none (an older snapshot)."""
        frame = getattr(snap, "roles", None)
        if frame is not None and len(frame):
            return cls(frame)
        return cls(infer_roles(snap.containers, endpoints=snap.endpoints))

    def _rows(self, role: str) -> list[dict[str, Any]]:
        rows = [r for r in self._records if r["role"] == role]
        return sorted(rows, key=lambda r: (bool(r["ambiguous"]),
                                           _CONF_RANK.get(str(r["confidence"]), 9),
                                           str(r["service"])))

    def services(self, role: str) -> list[str]:
        """Every service holding ``role``, the most certain first."""
        return [str(r["service"]) for r in self._rows(role)]

    def service(self, role: str) -> str | None:
        """The service holding ``role`` (the most certain of several), or None."""
        found = self.services(role)
        return found[0] if found else None

    def _row(self, service: str) -> dict[str, Any] | None:
        return self._by_service.get(service)

    def role(self, service: str) -> str | None:
        """The role of ``service``, or None when the stack has no such service."""
        row = self._row(service)
        return None if row is None else str(row["role"])

    def port(self, service: str | None) -> int | None:
        """The port ``service`` serves its role on (None when unknown)."""
        row = self._row(service) if service else None
        if row is None or pd.isna(row["port"]):
            return None
        return int(row["port"])

    def ports(self, service: str) -> list[int]:
        """Every port ``service`` listens on (its role's port first)."""
        row = self._row(service)
        return [int(p) for p in row["ports"]] if row is not None else []

    def http_path(self, service: str | None) -> str:
        """The HTTP path that answered for ``service`` (empty when none was learned)."""
        row = self._row(service) if service else None
        return str(row["http_path"] or "") if row is not None else ""

    def route(self, service: str | None) -> str:
        """The proxy location that forwards to ``service`` (e.g. ``/api/``), or ""."""
        row = self._row(service) if service else None
        return str(row["route"] or "") if row is not None else ""

    def software(self, service: str) -> str:
        """The software word matched for ``service`` (postgres, redis, nginx, ...)."""
        row = self._row(service)
        return str(row["software"] or "") if row is not None else ""

    def problems(self) -> list[str]:
        """One line per ambiguous or undecided role (for a warning finding)."""
        out = []
        for r in self.frame.to_dict("records"):
            if bool(r["ambiguous"]):
                out.append(f"{r['service']}: role {r['role']} is ambiguous "
                           f"(alternatives: {r['alternatives']}); {r['evidence']}")
            elif r["decided_by"] == "none":
                out.append(f"{r['service']}: role undecided; {r['evidence']}")
        return out

    def as_mapping(self) -> dict[str, str]:
        """service -> role."""
        return {str(r["service"]): str(r["role"]) for r in self.frame.to_dict("records")}

    def __repr__(self) -> str:
        return f"Roles({', '.join(f'{s}={r}' for s, r in self.as_mapping().items())})"
