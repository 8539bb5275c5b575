"""The fault scenarios: each finds its targets by role and returns what it did and the steps
that undo it (applied and recorded by :mod:`revivadiag.lab.faults`)."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import requests.exceptions

from revivadiag.errors import LabError, ParameterError
from revivadiag.lab import state
from revivadiag.lab.compose import run_compose
from revivadiag.lab.config import LABEL_LAB, LABEL_PREFIX
from revivadiag.lab.fault_view import PROJECT_LABEL, SERVICE_LABEL, LabView, Member, member_of

DEFAULT_DELAY_MS = 300
MAX_DELAY_MS = 60000
STOP_TIMEOUT_S = 5
#: seconds a recreated backend may take to be healthy
READY_S = 120.0
#: placeholder containers tried per network to hold an old address (one, unless the
#: network's address range has holes below it)
MAX_PLACEHOLDERS = 8
DELAY_ENV = "REVIVADIAG_DELAY_FILE"
PLACEHOLDER_LABEL = "io.revivadiag.fault-placeholder"
FaultErrors = (docker.errors.DockerException, requests.exceptions.RequestException)


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
    _wait_container_healthy(view.client, new.name, READY_S)
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


def expect_ok(out: str, count: int, what: str) -> None:
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
    expect_ok(out, 2, f"changing the password of {c.name}")
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


