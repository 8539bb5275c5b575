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

import contextlib
import io
import json
import os
import secrets
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from revivadiag.errors import FaultStateError, LabError, ParameterError
from revivadiag.lab import state
from revivadiag.lab.compose import run_compose
from revivadiag.lab.config import LABEL_LAB, LABEL_PREFIX, LabConfig, check_prefix

FAULT_FILE = "fault.json"
DEFAULT_DELAY_MS = 300
MAX_DELAY_MS = 60000
STOP_TIMEOUT_S = 5
HEAL_TIMEOUT_S = 120.0
#: seconds one engine API call of a scenario may take
API_TIMEOUT_S = 60.0
#: how long break waits for the instance to be healthy before it changes anything
READY_TIMEOUT_S = 30.0
#: placeholder containers tried per network to hold an old address (one, unless the
#: network's address range has holes below it)
MAX_PLACEHOLDERS = 8
DELAY_ENV = "REVIVADIAG_DELAY_FILE"
PLACEHOLDER_LABEL = "io.revivadiag.fault-placeholder"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
FaultErrors = (docker.errors.DockerException, requests.exceptions.RequestException)


# ---------------------------------------------------------------- the stack as the faults see it


@dataclass(frozen=True)
class Member:
    """One running container of the instance: its service, role and network endpoints."""

    service: str
    role: str
    name: str
    container_id: str
    image: str
    env: Mapping[str, str]
    #: network -> IPv4 address
    addresses: Mapping[str, str]
    #: network -> aliases (the container's own short id left out: Docker adds it itself)
    aliases: Mapping[str, tuple[str, ...]]

    @property
    def networks(self) -> set[str]:
        return set(self.addresses)


def _env_of(inspect: Mapping[str, Any]) -> dict[str, str]:
    items = (inspect.get("Config") or {}).get("Env") or []
    return dict(str(i).partition("=")[::2] for i in items)


def member_of(inspect: Mapping[str, Any], role: str) -> Member:
    """A :class:`Member` from a container's inspect dict."""
    cid = str(inspect.get("Id", ""))
    nets = (inspect.get("NetworkSettings") or {}).get("Networks") or {}
    return Member(
        service=str(((inspect.get("Config") or {}).get("Labels") or {}).get(SERVICE_LABEL, "")),
        role=role,
        name=str(inspect.get("Name", "")).lstrip("/"),
        container_id=cid,
        image=str((inspect.get("Config") or {}).get("Image", "")),
        env=_env_of(inspect),
        addresses={n: str(ep.get("IPAddress") or "") for n, ep in nets.items()},
        aliases={n: tuple(sorted(a for a in (ep.get("Aliases") or []) if not cid.startswith(a)))
                 for n, ep in nets.items()},
    )


@dataclass
class LabView:
    """The running instance: its config, who holds which role, and the proxy's resolution."""

    client: docker.DockerClient
    config: LabConfig
    members: dict[str, Member]
    #: the proxy's nginx resolves the backend's name once at start (a stale address after the
    #: backend moves); None when there is no nginx proxy to judge
    proxy_resolves_once: bool | None = None
    resolution_evidence: str = ""

    @property
    def prefix(self) -> str:
        return self.config.prefix

    def member(self, role: str) -> Member:
        """The running service holding ``role``; LabError when none does."""
        for m in self.members.values():
            if m.role == role:
                return m
        raise LabError(f"lab {self.prefix!r}: no running service holds the role {role}")


def read_lab(client: docker.DockerClient, prefix: str) -> LabView:
    """The instance's members and roles (learned from the stack) and its proxy's resolution."""
    from revivadiag.collect.containers import parse_containers
    from revivadiag.collect.inventory import gather
    from revivadiag.collect.networks import parse_endpoints
    from revivadiag.collect.roles import Roles
    from revivadiag.collect.stack import collect_roles

    config = _config(prefix)
    inv = gather(client, prefix)
    frames = {"containers": parse_containers(inv.containers, inv.vanished, inv.project),
              "endpoints": parse_endpoints(inv.containers, inv.project)}
    roles_frame, _facts = collect_roles(client, inv, frames)
    roles = Roles(roles_frame)
    members: dict[str, Member] = {}
    for inspect in inv.containers:
        if not (inspect.get("State") or {}).get("Running"):
            continue
        service = str(((inspect.get("Config") or {}).get("Labels") or {}).get(SERVICE_LABEL, ""))
        members[service] = member_of(inspect, roles.role(service) or "other")
    view = LabView(client, config, members)
    _judge_proxy(view, inv, frames, roles)
    return view


def _judge_proxy(view: LabView, inv: Any, frames: Mapping[str, Any], roles: Any) -> None:
    """Does the proxy resolve the backend once? (the diagnosis's own ``proxy-resolution``)"""
    from revivadiag.analyze.proxy_audit import check_nginx, declared_watcher
    from revivadiag.collect.env import parse_env
    from revivadiag.collect.live_facts import LiveFacts
    from revivadiag.collect.proxy_config import read_nginx_config

    proxy, backend = roles.service("proxy"), roles.service("backend")
    if proxy not in view.members or backend not in view.members:
        return
    facts = LiveFacts(base_url="")
    facts.nginx_files, facts.nginx_source = read_nginx_config(view.client,
                                                              view.members[proxy].name)
    b = view.members[backend]
    facts.backend_hosts = frozenset(n.lower() for n in {
        b.service, b.name, *b.addresses.values(), *(a for al in b.aliases.values() for a in al)})
    watcher = declared_watcher(parse_env(inv.containers, inv.project), frames["containers"],
                               proxy)
    verdict = {r["check_id"]: r for r in check_nginx(facts, watcher)}["proxy-resolution"]
    if verdict["status"] in ("pass", "fail"):
        view.proxy_resolves_once = verdict["status"] == "fail"
        view.resolution_evidence = str(verdict["evidence"])


def _config(prefix: str) -> LabConfig:
    config = state.load_config(check_prefix(prefix))
    if config is None:
        raise LabError(f"no lab instance {prefix!r} (start one with `revivadiag lab up "
                       f"--prefix {prefix}`)")
    return config


def describe(client: docker.DockerClient, prefix: str) -> dict[str, dict[str, Any]]:
    """service -> {container, id, state, health, networks: {network: {ipv4, aliases}}} of the
    instance's containers: what ``break`` records as the before-state and heal compares."""
    out: dict[str, dict[str, Any]] = {}
    filters = {"label": f"{PROJECT_LABEL}={check_prefix(prefix)}"}
    for c in client.containers.list(all=True, filters=filters):
        m = member_of(c.attrs, "")
        health = (c.attrs.get("State") or {}).get("Health") or {}
        out[m.service] = {
            "container": m.name, "id": m.container_id[:12], "state": c.status,
            "health": str(health.get("Status", "none")),
            "networks": {n: {"ipv4": ip, "aliases": list(m.aliases[n])}
                         for n, ip in sorted(m.addresses.items())},
        }
    return dict(sorted(out.items()))


def structure(described: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What heal must restore exactly: names, state, health, networks and aliases (no ids, no
    addresses).

    >>> structure({"api": {"container": "p_api_1", "id": "ab", "state": "running",
    ...     "health": "healthy", "networks": {"p_default": {"ipv4": "10.0.0.2",
    ...     "aliases": ["api"]}}}})
    {'api': {'container': 'p_api_1', 'state': 'running', 'health': 'healthy', \
'networks': {'p_default': ['api']}}}
    """
    return {s: {"container": d["container"], "state": d["state"], "health": d["health"],
                "networks": {n: list(v["aliases"]) for n, v in d["networks"].items()}}
            for s, d in described.items()}


def address_changes(before: Mapping[str, Mapping[str, Any]],
                    after: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``service network: old -> new`` for every address (and ``service id: old -> new`` for
    every container id) that differs.

    >>> address_changes({"a": {"id": "1", "networks": {"n": {"ipv4": "10.0.0.2"}}}},
    ...                 {"a": {"id": "2", "networks": {"n": {"ipv4": "10.0.0.5"}}}})
    ['a id: 1 -> 2', 'a n: 10.0.0.2 -> 10.0.0.5']
    """
    out = []
    for service, old in before.items():
        new = after.get(service)
        if new is None:
            out.append(f"{service}: gone")
            continue
        if old.get("id") != new.get("id"):
            out.append(f"{service} id: {old.get('id')} -> {new.get('id')}")
        for net, ep in old.get("networks", {}).items():
            now = new.get("networks", {}).get(net, {}).get("ipv4", "(not attached)")
            if ep.get("ipv4") != now:
                out.append(f"{service} {net}: {ep.get('ipv4')} -> {now}")
    return out


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
        return Fault(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
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


# ---------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Change:
    """What one scenario did: lines for the user and the steps that undo it."""

    did: list[str]
    undo: list[dict[str, Any]]


Apply = Callable[[LabView, int], Change]


@dataclass(frozen=True)
class Scenario:
    """A named fault: one line of help and the function that applies it."""

    name: str
    summary: str
    apply: Apply


def _who(m: Member) -> str:
    return f"{m.name} (service {m.service}, role {m.role})"


def _stop_backend(view: LabView, _ms: int) -> Change:
    b = view.member("backend")
    view.client.api.stop(b.container_id, timeout=STOP_TIMEOUT_S)
    return Change([f"stopped {_who(b)}"],
                  [{"op": "start", "container": b.name}])


def _placeholder(view: LabView, b: Member, network: str, index: int) -> Any:
    """A sleeping container on ``network`` (from the backend's own image, so it exists)."""
    return view.client.containers.run(
        b.image, entrypoint=["sleep", "600"], command=[], detach=True, network=network,
        name=f"{view.prefix}_fault_hold_{index}",
        labels={LABEL_LAB: "0", LABEL_PREFIX: view.prefix, PLACEHOLDER_LABEL: "1"})


def _hold_addresses(view: LabView, b: Member) -> list[Any]:
    """Placeholders holding each of ``b``'s (now free) addresses: Docker gives a container
    the lowest free address, so a new one would otherwise get the old one back. Returns the
    holders of an old address; others (filling lower holes) are labelled placeholders too
    and go with :func:`remove_placeholders`."""
    holders: list[Any] = []
    started = 0
    for network, old in sorted(b.addresses.items()):
        for _ in range(MAX_PLACEHOLDERS):
            holder = _placeholder(view, b, network, started)
            started += 1
            holder.reload()
            if holder.attrs["NetworkSettings"]["Networks"][network]["IPAddress"] == old:
                holders.append(holder)
                break
    return holders


def _wait_container_healthy(client: docker.DockerClient, name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        c = client.containers.get(name)
        health = ((c.attrs.get("State") or {}).get("Health") or {}).get("Status", "none")
        if c.status == "running" and health in ("healthy", "none"):
            return
        if time.monotonic() >= deadline:
            raise LabError(f"{name} not healthy within {timeout_s:.0f} s ({c.status}, {health})")
        time.sleep(0.25)


def remove_placeholders(client: docker.DockerClient, prefix: str,
                        keep: frozenset[str] = frozenset()) -> list[str]:
    """Remove the instance's placeholder containers (found by label, so a crashed break
    leaves none behind for heal); their names."""
    filters = {"label": [f"{PLACEHOLDER_LABEL}=1", f"{LABEL_PREFIX}={prefix}"]}
    removed = []
    for c in client.containers.list(all=True, filters=filters):
        if c.name not in keep:
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
            removed.append(str(c.name))
    return removed


def _recreate_backend(view: LabView, _ms: int) -> Change:
    b = view.member("backend")
    lab_secrets = state.read_secrets(view.prefix)
    view.client.api.stop(b.container_id, timeout=STOP_TIMEOUT_S)
    view.client.api.remove_container(b.container_id)
    try:
        holders = _hold_addresses(view, b)
        run_compose(view.config, lab_secrets, "up", "-d", "--no-deps", "--no-build", b.service)
        new = member_of(_service_container(view, b.service).attrs, b.role)
    except (LabError, *FaultErrors):
        remove_placeholders(view.client, view.prefix)
        with contextlib.suppress(LabError):  # put the backend back as compose declares it
            run_compose(view.config, lab_secrets, "up", "-d", "--no-deps", "--no-build",
                        b.service)
        raise
    remove_placeholders(view.client, view.prefix, keep=frozenset(h.name for h in holders))
    _wait_container_healthy(view.client, new.name, HEAL_TIMEOUT_S)
    moved = ", ".join(f"{n} {b.addresses[n]} -> {new.addresses.get(n, '?')}"
                      for n in sorted(b.addresses))
    did = [f"recreated {_who(b)}: id {b.container_id[:12]} -> {new.container_id[:12]}; "
           f"addresses {moved}",
           f"the old addresses are held by {', '.join(h.name for h in holders)} (nothing "
           "listens there: connections to them are refused) until heal"]
    evidence = view.resolution_evidence.split("; ")[0]
    proxy = next((m for m in view.members.values() if m.role == "proxy"), None)
    if proxy is not None and view.proxy_resolves_once:
        did.append(f"the proxy {proxy.name} resolved the backend once at start "
                   f"({evidence}; ...): it still sends to the old address, so "
                   "requests through it fail (502) until heal restarts it")
    elif proxy is not None and view.proxy_resolves_once is False:
        did.append(f"the proxy {proxy.name} re-resolves the backend "
                   f"({evidence}): it follows the new address by itself "
                   "within its re-resolution interval")
    return Change(did, [{"op": "remove_container", "container": h.name} for h in holders])


def _service_container(view: LabView, service: str) -> Any:
    filters = {"label": [f"{PROJECT_LABEL}={view.prefix}", f"{SERVICE_LABEL}={service}"]}
    found = view.client.containers.list(all=True, filters=filters)
    if not found:
        raise LabError(f"lab {view.prefix!r}: service {service} has no container")
    return found[0]


def _slow_backend(view: LabView, ms: int) -> Change:
    b = view.member("backend")
    path = b.env.get(DELAY_ENV, "")
    if not path.startswith("/"):
        raise LabError(f"{_who(b)} does not honour injected latency (its image sets no "
                       f"{DELAY_ENV}); rebuild the lab's images with `revivadiag lab build`")
    data = f"{ms}\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(os.path.basename(path))
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    if not view.client.api.put_archive(b.container_id, os.path.dirname(path), buf.getvalue()):
        raise LabError(f"could not write {path} in {b.name}")
    return Change([f"slowed {_who(b)}: every request now waits {ms} ms first ({path})"],
                  [{"op": "remove_file", "container": b.name, "path": path}])


def _disconnect(view: LabView, m: Member, networks: list[str]) -> list[dict[str, Any]]:
    undo = []
    for net in sorted(networks):
        view.client.api.disconnect_container_from_network(m.container_id, net)
        undo.append({"op": "connect", "container": m.name, "network": net,
                     "aliases": list(m.aliases.get(net, ()))})
    return undo


def _cut_database(view: LabView, _ms: int) -> Change:
    b, db = view.member("backend"), view.member("database")
    shared = sorted(b.networks & db.networks)
    if not shared:
        raise LabError(f"{b.name} and {db.name} share no network: the database is "
                       "unreachable already")
    side = b if b.networks - set(shared) else db
    undo = _disconnect(view, side, shared)
    kept = sorted(side.networks - set(shared))
    return Change([f"disconnected {_who(side)} from {', '.join(shared)} (the networks "
                   f"{b.service} and {db.service} share); it keeps "
                   f"{', '.join(kept) if kept else 'no network'}; {db.service} is unreachable "
                   f"from {b.service}"], undo)


def _remove_from_network(view: LabView, _ms: int) -> Change:
    b, p = view.member("backend"), view.member("proxy")
    shared = sorted(b.networks & p.networks)
    if not shared:
        raise LabError(f"{b.name} and {p.name} share no network")
    undo = _disconnect(view, b, shared)
    kept = sorted(b.networks - set(shared))
    return Change([f"removed {_who(b)} from {', '.join(shared)} (the networks it shares with "
                   f"{p.service}, role proxy); it keeps {', '.join(kept) if kept else 'none'}"],
                  undo)


def redis_cli(client: docker.DockerClient, container: str, commands: list[str],
              timeout_s: float = 10.0) -> str:
    """Run ``commands`` with the container's redis-cli, given on its stdin (never argv: they
    carry passwords); its output. The container's REDISCLI_AUTH is ignored."""
    from revivadiag.engine.stdin import exec_with_stdin

    payload = "".join(f"{c}\n" for c in commands).encode()
    argv = ["env", "-u", "REDISCLI_AUTH", "redis-cli", "--no-auth-warning"]
    code, out, err = exec_with_stdin(client.api, container, argv, payload, timeout_s)
    if code != 0:
        raise LabError(f"redis-cli in {container} failed ({code}): {err.strip()[:200]}")
    return out


def _expect_ok(out: str, count: int, what: str) -> None:
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if lines[:count] != ["OK"] * count:
        raise LabError(f"{what}: redis answered {' | '.join(lines)[:200]!r}")


def _cache_password(view: LabView, _ms: int) -> Change:
    c = view.member("cache")
    original = state.read_secrets(view.prefix)["REDIS_PASSWORD"]
    temporary = secrets.token_urlsafe(18)
    out = redis_cli(view.client, c.container_id,
                    [f"AUTH {original}", f"CONFIG SET requirepass {temporary}",
                     "CLIENT KILL TYPE normal"])
    _expect_ok(out, 2, f"changing the password of {c.name}")
    return Change([f"changed the password of {_who(c)} and closed its client connections: "
                   "the password the backend holds is now wrong (reconnects get WRONGPASS), "
                   "and the cache's own healthcheck fails"],
                  [{"op": "cache_password", "container": c.name, "temporary": temporary}])


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("backend-stopped", "the backend's container is stopped", _stop_backend),
    Scenario("backend-recreated", "the backend is recreated at a new address (a proxy that "
             "resolved it once keeps the stale one: 502)", _recreate_backend),
    Scenario("backend-slow", "every request to the backend waits --ms N first "
             f"(default {DEFAULT_DELAY_MS})", _slow_backend),
    Scenario("database-unreachable", "the backend -> database path is cut (network "
             "disconnect, other networks kept)", _cut_database),
    Scenario("cache-wrong-password", "the cache's password changes: the backend's is now "
             "wrong", _cache_password),
    Scenario("network-removed", "the backend is removed from the networks it shares with "
             "the proxy", _remove_from_network),
)}


def scenario_lines() -> list[str]:
    """``name  summary`` for each scenario (``lab break --list``)."""
    width = max(len(n) for n in SCENARIOS)
    return [f"{s.name:<{width}}  {s.summary}" for s in SCENARIOS.values()]


def check_scenario(name: str) -> Scenario:
    """The scenario called ``name``; ParameterError listing them otherwise."""
    if name not in SCENARIOS:
        raise ParameterError("scenario", name, f"expected one of {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def check_delay(ms: object) -> int:
    """A delay in ms for ``backend-slow`` (1..MAX_DELAY_MS), else ParameterError."""
    if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= MAX_DELAY_MS:
        raise ParameterError("--ms", ms, f"expected an integer 1..{MAX_DELAY_MS}")
    return ms


# ---------------------------------------------------------------- break and heal


def _connect_client(client: docker.DockerClient | None) -> docker.DockerClient:
    from revivadiag.engine.client import connect

    # stop, remove, network changes: an engine under load can take longer than probes allow
    return client or connect(timeout_s=API_TIMEOUT_S)


def _wait_healthy(client: docker.DockerClient, config: LabConfig, timeout_s: float) -> None:
    from revivadiag.lab.lifecycle import _wait_healthy as wait

    wait(client, config, timeout_s, fresh=False)


def _check_time(text: str) -> datetime:
    """A health-log ``Start`` (RFC 3339 with nanoseconds) as a datetime.

    >>> _check_time("2026-11-30T11:24:50.123456789Z").microsecond
    123456
    """
    head, _, frac = text.rstrip("Z").partition(".")
    digits = "".join(ch for ch in frac if ch.isdigit())[:6].ljust(6, "0")
    return datetime.fromisoformat(f"{head}.{digits}+00:00")


def health_marks(client: docker.DockerClient, prefix: str) -> dict[str, datetime]:
    """container id -> start of its latest healthcheck run (before heal changes anything)."""
    filters = {"label": f"{PROJECT_LABEL}={prefix}"}
    marks = {}
    for c in client.containers.list(all=True, filters=filters):
        log = ((c.attrs.get("State") or {}).get("Health") or {}).get("Log") or []
        if log:
            marks[c.id] = _check_time(str(log[-1].get("Start", "")))
    return marks


def wait_checked(client: docker.DockerClient, config: LabConfig, marks: Mapping[str, datetime],
                 timeout_s: float) -> None:
    """Wait until every service passed a healthcheck that *ran after* ``marks`` (Docker keeps
    reporting ``healthy`` until many checks in a row fail, so the status alone could predate
    the fault), then until the engine says healthy; LabError after ``timeout_s``. One passed
    check is enough: on a loaded host a check may time out (exit -1) now and then."""
    deadline = time.monotonic() + timeout_s
    filters = {"label": f"{PROJECT_LABEL}={config.prefix}"}
    while True:
        pending = []
        for c in client.containers.list(all=True, filters=filters):
            health = (c.attrs.get("State") or {}).get("Health")
            if not health:
                continue
            fresh = [e for e in health.get("Log") or []
                     if c.id not in marks or _check_time(str(e.get("Start", ""))) > marks[c.id]]
            if not any(e.get("ExitCode") == 0 for e in fresh):
                pending.append(c.name)
        if not pending:
            break
        if time.monotonic() >= deadline:
            raise LabError(f"not healthy within {timeout_s:.0f} s: {', '.join(pending)}")
        time.sleep(0.25)
    _wait_healthy(client, config, max(1.0, deadline - time.monotonic()))


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
    config = _config(prefix)
    existing = current_fault(prefix)
    if existing is not None:
        raise FaultStateError(prefix, f"is already broken ({existing.scenario} since "
                              f"{existing.broken_at}); run `revivadiag lab heal --prefix "
                              f"{prefix}` first")
    client = _connect_client(client)
    _wait_healthy(client, config, READY_TIMEOUT_S)
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
        _expect_ok(out, 2, f"restoring the password of {name}")
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
    config = _config(prefix)
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
        wait_checked(client, config, marks, timeout_s)
    except FaultErrors as exc:
        raise LabError(f"healing {fault.scenario} on lab {prefix!r} failed: {exc}") from exc
    if not did:
        did.append("nothing to undo in the containers")
    did.append("every service is healthy")
    fault_path(prefix).unlink(missing_ok=True)
    return Healed(fault.scenario, prefix, did,
                  address_changes(fault.before, describe(client, prefix)),
                  time.monotonic() - started)
