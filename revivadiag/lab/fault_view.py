"""The lab instance as the fault scenarios see it: members by role, the before/after state,
and waiting for healthchecks that ran after a change (:mod:`revivadiag.lab.faults`)."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import docker

from revivadiag.errors import LabError
from revivadiag.lab import state
from revivadiag.lab.config import LabConfig, check_prefix

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


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

    config = lab_config(prefix)
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


def lab_config(prefix: str) -> LabConfig:
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



def wait_healthy(client: docker.DockerClient, config: LabConfig, timeout_s: float) -> None:
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
                 timeout_s: float, services: Collection[str] | None = None) -> None:
    """Wait until each of ``services`` (default: all) passed a healthcheck that *ran after*
    ``marks`` (Docker keeps reporting ``healthy`` until many checks in a row fail, so the
    status alone could predate the fault), then until the engine says every service is
    healthy; LabError after ``timeout_s``. One passed check is enough: on a loaded host a
    check may time out (exit -1) now and then."""
    deadline = time.monotonic() + timeout_s
    filters = {"label": f"{PROJECT_LABEL}={config.prefix}"}
    while True:
        pending = []
        for c in client.containers.list(all=True, filters=filters):
            health = (c.attrs.get("State") or {}).get("Health")
            if not health or (services is not None
                              and c.labels.get(SERVICE_LABEL) not in services):
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
    wait_healthy(client, config, max(1.0, deadline - time.monotonic()))


