"""Finding the project's proxies by role and making them reload (re-resolve their upstreams).

The proxy is found by its role (:mod:`revivadiag.collect.roles`), never by name. nginx is
reloaded through ``exec``: its running configuration (the master's ``-c`` file) is checked
first with ``nginx -t``; a reload only happens when the check passes. A proxy without an
``nginx`` binary (Traefik, Caddy watching the engine themselves) is left alone and said so.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

import docker.errors

from revivadiag.collect.containers import parse_containers
from revivadiag.collect.inventory import gather
from revivadiag.collect.networks import parse_endpoints
from revivadiag.collect.proxy_config import nginx_conf_path
from revivadiag.collect.roles import Roles
from revivadiag.collect.stack import collect_roles
from revivadiag.errors import StepError
from revivadiag.redact import project_scrubber, raw_env


def project_roles(client: Any, project: str) -> Roles:
    """The roles of the project's services, decided from the live stack."""
    return project_facts(client, project)[0]


_HOSTISH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _hosts_in(value: str) -> set[str]:
    """Host names a value names: a URL's host, or the value itself when it looks like one."""
    if "://" in value:
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        return {host} if host else set()
    return {value} if _HOSTISH.match(value) and not value.isdigit() else set()


def project_facts(client: Any, project: str) -> tuple[Roles, dict[str, list[str]]]:
    """The roles, and the names clients of the project use to reach each other, each with
    the networks its clients are on: the hosts of the proxies' routes and the hosts in the
    containers' environment (URL hosts, bare host names). Only host and network names leave
    here, never a value."""
    inv = gather(client, project)
    frames = {"containers": parse_containers(inv.containers, inv.vanished, inv.project),
              "endpoints": parse_endpoints(inv.containers, inv.project)}
    roles, facts = collect_roles(client, inv, frames)
    nets_of = {}
    for found in inv.containers:
        labels = (found.get("Config") or {}).get("Labels") or {}
        nets = set((found.get("NetworkSettings") or {}).get("Networks") or {})
        nets_of[str(found.get("Name") or "").lstrip("/")] = nets
        nets_of.setdefault("service:" + str(labels.get("com.docker.compose.service")), set())
        nets_of["service:" + str(labels.get("com.docker.compose.service"))] |= nets
    names: dict[str, set[str]] = {}
    for route in facts.routes:
        if route.host:
            names.setdefault(route.host, set()).update(nets_of.get(f"service:{route.proxy}")
                                                       or nets_of.get(route.proxy) or set())
    for found in inv.containers:
        if not (found.get("State") or {}).get("Running"):
            continue
        mine = nets_of[str(found.get("Name") or "").lstrip("/")]
        for value in raw_env(found).values():
            for host in _hosts_in(value):
                names.setdefault(host, set()).update(mine)
    return Roles(roles), {n: sorted(v) for n, v in sorted(names.items())}


def role_containers(client: Any, project: str, role: str, roles: Roles | None = None
                    ) -> list[str]:
    """Names of the running containers of every service holding ``role``."""
    roles = roles or project_roles(client, project)
    services = set(roles.services(role))
    if not services:
        return []
    listed = client.api.containers(filters={"label": f"com.docker.compose.project={project}"})
    return sorted(str(c["Names"][0]).lstrip("/") for c in listed
                  if (c.get("Labels") or {}).get("com.docker.compose.service") in services)


def _exec(client: Any, name: str, argv: list[str]) -> tuple[int, str]:
    try:
        res = client.api.exec_create(name, argv, stdout=True, stderr=True)
        out = client.api.exec_start(res["Id"])
        code = client.api.exec_inspect(res["Id"]).get("ExitCode")
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc)
        if "executable file not found" in text or "no such file" in text.lower():
            return 127, text
        raise StepError(f"exec in {name}", text) from exc
    return int(code if code is not None else 1), bytes(out or b"").decode("utf-8", "replace")


#: how long a reload may take to replace nginx's workers (see :func:`_settle`)
RELOAD_SETTLE_S = 3.0


def reload_nginx(client: Any, name: str, check_only: bool = False, tested: bool = False
                 ) -> str:
    """``nginx -t`` then a reload with the master's own configuration file. Returns what was
    done; StepError when the configuration check fails (nothing reloaded).

    ``tested``: the configuration was checked a moment ago and is unchanged (a second reload
    that only re-resolves names): no ``nginx -t``, and when nginx's master is the container's
    PID 1 the reload is a SIGHUP through the engine's API (no exec: the moment it takes is a
    moment old workers keep the old addresses)."""
    try:
        top = client.api.top(name)
        conf = nginx_conf_path(top)
    except docker.errors.APIError as exc:
        raise StepError(f"reload {name}", str(exc.explanation or exc)) from exc
    if not tested:
        code, out = _exec(client, name, ["nginx", "-t", "-c", conf])
        if code == 127 or ("OCI runtime exec failed" in out):
            return f"{name}: no nginx binary, not reloaded"
        if code != 0:
            found = client.api.inspect_container(name)
            scrub = project_scrubber([found])
            lines = [ln for ln in out.splitlines() if ln.strip()][-3:]
            raise StepError(f"reload {name}", "nginx -t rejects the configuration: "
                            + scrub.scrub(" | ".join(lines)))
    if check_only:
        return f"{name}: nginx -t -c {conf} ok"
    before = _workers(client, name)[0]
    if tested and _master_is_pid1(client, name, top):
        client.api.kill(name, signal="SIGHUP")
        how = "SIGHUP to the master"
    else:
        code, _out = _exec(client, name, ["nginx", "-s", "reload", "-c", conf])
        if code != 0:
            raise StepError(f"reload {name}", f"nginx -s reload exited {code}")
        how = "nginx -t ok, reloaded" if not tested else "reloaded"
    return f"{name}: {how} ({conf}); {_settle(client, name, before)}"


def _master_is_pid1(client: Any, name: str, top: dict[str, Any]) -> bool:
    """Whether the container's main process is nginx's master (a signal to the container
    reaches nginx itself, not a wrapper that might not forward it)."""
    pid = str(((client.api.inspect_container(name) or {}).get("State") or {}).get("Pid") or "")
    titles = [str(t).upper() for t in top.get("Titles") or []]
    if not pid or "PID" not in titles:
        return False
    pid_at = titles.index("PID")
    cmd_at = titles.index("CMD") if "CMD" in titles else len(titles) - 1
    return any(str(p[pid_at]) == pid and "nginx" in str(p[cmd_at]) and "master" in str(p[cmd_at])
               for p in top.get("Processes") or [])


def _workers(client: Any, name: str) -> tuple[set[str], set[str]]:
    """PIDs of nginx's serving workers and of those shutting down (``docker top``)."""
    try:
        top = client.api.top(name)
    except docker.errors.APIError:
        return set(), set()
    titles = [str(t).upper() for t in top.get("Titles") or []]
    pid_at = titles.index("PID") if "PID" in titles else 1
    cmd_at = titles.index("CMD") if "CMD" in titles else len(titles) - 1
    active: set[str] = set()
    leaving: set[str] = set()
    for proc in top.get("Processes") or []:
        cmd = str(proc[cmd_at])
        if "worker process" in cmd:
            (leaving if "shutting down" in cmd else active).add(str(proc[pid_at]))
    return active, leaving


def _settle(client: Any, name: str, before: set[str], max_s: float = RELOAD_SETTLE_S) -> str:
    """Wait (at most ``max_s``) until the reload took effect: new workers serve and the old
    ones, which still answer requests arriving on their open connections with the old
    configuration (old addresses), are gone. A worker kept by a long-lived connection (a
    WebSocket) may outlast the bound; it then serves only that connection."""
    t0 = time.monotonic()
    active, leaving = _workers(client, name)
    while time.monotonic() - t0 < max_s and ((active & before) or leaving):
        time.sleep(0.05)
        active, leaving = _workers(client, name)
    ms = round((time.monotonic() - t0) * 1000)
    if (active & before) or leaving:
        return f"{len(leaving | (active & before))} old worker(s) still closing after {ms} ms"
    return f"old workers gone in {ms} ms"


def reload_proxies(client: Any, names: list[str], log: Any = None, tested: bool = False
                   ) -> list[str]:
    """Reload each named proxy container that still runs; what was done, one line each
    (``tested``: see :func:`reload_nginx`)."""
    done = []
    for name in names:
        try:
            found = client.api.inspect_container(name)
        except docker.errors.NotFound:
            continue
        if not (found.get("State") or {}).get("Running"):
            continue
        line = reload_nginx(client, name, tested=tested)
        done.append(line)
        if log is not None:
            log(line)
    return done
