"""Replacing one service's container: blue-green beside it, stop-start on its volume, or in
place.

Names: *blue* is the container running now, *green* the one that replaces it (created from
the target compose files by :mod:`revivadiag.migrate.steps.compose_target`, so Compose owns
the end state, or from blue's own configuration with a changed environment for
``config.env``). Green carries the label ``io.revivadiag.migrate.step=<step id>``; blue is
never removed here: it is stopped, renamed aside (``<name>_rdblue_<step>``) and kept for
rollback until the ``cleanup`` step removes it. Until then ``docker-compose ps`` lists it
(stopped) and ``up -d`` would start it again: run ``up -d`` checks after ``cleanup``.

**Blue-green** (the default for a stateless service that publishes no host port):

1. green is created beside blue on the target networks, with Compose's aliases (service
   name + declared aliases) plus blue's name when the name changes (and the final name while
   green still has a temporary one), so old and new names both resolve; blue's networks
   that the target does not have (the old flat network) get a temporary endpoint of green
   with the same aliases, so clients not yet replaced find it. These temporary endpoints are
   listed in the result and left for ``network.remove`` of that network (or ``cleanup``).
2. green starts; traffic moves only once it is ready: its healthcheck reports healthy, or,
   without one, a TCP connect to its learned port (the port blue listens on, read from blue's
   socket table, else the image's exposed port) succeeds, or, with no port at all, it ran
   2 s without restarting.
3. *graceful* (no proxy pins blue by address): the project's proxies (role ``proxy``) are
   reloaded (``nginx -t`` first; the reload waits until nginx's old workers, which still
   use the old addresses, are gone) so that names resolved once are resolved again: blue's
   container name now resolves to green only, a shared alias to both while blue runs.
4. blue stops gracefully (this is its drain): its own stop signal (an nginx proxy: SIGQUIT),
   then the engine's stop after its StopTimeout. A well-behaved server closes its listening
   socket at once (new connections are refused, so nginx moves them to green and marks
   blue down), lets its requests in flight finish, closes its WebSockets with 1001 (going
   away: clients reconnect through the proxy to green) and exits; the lab's backend, the
   shop's api and web linger ``SHUTDOWN_LAMEDUCK_S`` (1 s) meanwhile. Once stopped it is
   out of DNS, and the proxies are reloaded once more. Blue is not disconnected first: a
   request in flight there, or one sent to its cached address, would hang.

*Pinned* (a proxy's running configuration names blue by address: a watcher beside nginx
rewrites it on its own schedule, as the lab target's frontend does): blue leaves DNS while it
still serves — it is disconnected, at a quiet moment, from each network where it shares an
alias a client uses — the proxies are reloaded, blue drains (its established connections,
polled in its socket table, at most ``ctx.drain_s``) while the watcher moves, then stops
gracefully; the proxies are reloaded again.

**The edge proxy** (a service holding the ``proxy`` role that publishes a host port: where
the traffic enters) cannot have two containers on the same host port. Where the engine runs
on this host and iptables answers (:mod:`revivadiag.migrate.hostport`): an *interim* green
(``<name>_rdprobe``, the target configuration published on a port the engine picks) starts
and proves healthy; a netfilter redirect (nat ``REDIRECT``, tagged with the step, journaled
through the log, removed by ``undo`` and seen by ``classify``) sends new connections for the
host port to the interim; blue stops gracefully (requests in flight on it finish); the final
green starts on the host port and proves ready; the redirect goes; the interim stops
gracefully and is removed. No connection is refused (``window_ms`` 0; ``redirected_ms`` is
how long the redirect was in place). Elsewhere: green is first started *unpublished* to
prove its configuration healthy, then removed; the final green is created with the port,
blue is stopped (freeing the port) and green started at once. The window — from the first
request on the host port that gets no HTTP answer to the first that gets one again — is
measured by ``HEAD /`` to 127.0.0.1 every 5 ms during the move (the engine's port forwarder
accepts connections even with no container behind it, so a TCP connect proves nothing) and
reported as ``window_ms``, with ``redirect`` saying why no redirect was used.

**Another service that publishes a host port** (a backend published for debugging): the
traffic through the proxy must not see the port move. Blue-green runs twice: first to an
*interim* green without the port (``<name>_rdprobe``, same aliases), which takes the traffic
while blue drains and stops (freeing the port); then to the final green with the port, while
the interim drains, stops and is removed. Only direct host clients of the published port see
a gap (``host_port_window_ms``); the proxy's traffic has none.

**Stateful** services (``stateful: true``: PostgreSQL, Redis on the same volume) and
**in-place** mode stop blue before starting green (created beforehand, so only ``start`` is
in the window): ``window_ms`` is the time without a running container, ``ready_ms`` until
green is healthy. The backend's retries with backoff cover the gap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker.errors

from revivadiag.collect.live import NGINX_SOFTWARE
from revivadiag.errors import StepError
from revivadiag.migrate import hostport
from revivadiag.migrate.model import Applied, Context, Mode
from revivadiag.migrate.steps import engine as eng
from revivadiag.migrate.steps.compose_target import load_target
from revivadiag.migrate.steps.proxies import project_facts, reload_proxies, role_containers

BLUE_SUFFIX = "_rdblue_"
GREEN_SUFFIX = "_rdgreen"
PROBE_SUFFIX = "_rdprobe"
UNDO_SUFFIX = "_rdundo"


def short(step_id: str) -> str:
    """A name-safe form of a step id."""
    return "".join(c if c.isalnum() or c in "_.-" else "-" for c in step_id)[:40]


def aside_name(name: str, step_id: str) -> str:
    return f"{name}{BLUE_SUFFIX}{short(step_id)}"


def find_blue(client: Any, project: str, service: str, name: str | None) -> dict[str, Any]:
    """The container to replace: by name, else the service's only running container."""
    if name:
        found = eng.inspect(client, name)
        if found is None:
            raise StepError(f"replace {service}", f"no container named {name!r}")
        return found
    running = [c for c in eng.service_containers(client, project, service)
               if (c.get("State") or {}).get("Running")]
    if len(running) != 1:
        raise StepError(f"replace {service}", f"expected one running container of the "
                        f"service, found {len(running)}")
    return running[0]


def capture(ctx: Context, service: str, from_name: str | None, to_name: str | None
            ) -> dict[str, Any]:
    """The before-state of a switch: blue's full configuration (no secret values), the
    target name, and the proxies found by role."""
    blue = find_blue(ctx.client, ctx.project, service, from_name)
    state = eng.container_state(blue)
    roles, names = project_facts(ctx.client, ctx.project)
    proxies = [p for p in role_containers(ctx.client, ctx.project, "proxy", roles)
               if p != state["name"]]
    mine = {state["name"], to_name or state["name"]}
    mine |= {a for ep in state["networks"].values() for a in ep.get("aliases", [])}
    exposed = eng.Spec("", {"ExposedPorts": state["config"].get("ExposedPorts") or {}}, {})
    return {"service": service, "blue": state, "to": to_name or state["name"],
            "proxies": proxies, "proxy_services": roles.services("proxy"),
            "nginx": service in roles.services("proxy")
            and roles.software(service) in NGINX_SOFTWARE,
            "software": roles.software(service),
            "aliases_in_use": {n: names[n] for n in sorted(mine & set(names))},
            # the port blue serves on, read while it runs (None: it serves nothing): what
            # tells an undo that blue is back
            "probe_port": learned_port(ctx.client, blue, exposed)}


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's ephemeral port range: a listener there (a library's own socket, a
    debugger) is not the port the service serves on, and a new container will not reuse it."""
    try:
        low, high = (int(x) for x in
                     Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return low, high


def learned_port(client: Any, blue: Mapping[str, Any] | None, spec: eng.Spec) -> int | None:
    """The port to probe green on: one blue listens on (its socket table) that green exposes
    too (without exposed ports: one outside the ephemeral range). A running blue whose socket
    table is read and shows no such port is a service that serves nothing (a worker sharing
    an image that exposes a port): None, so green is ready
    once it has run a while. Without a running blue: green's first exposed port."""
    exposed = sorted(int(p.split("/")[0]) for p in (spec.body.get("ExposedPorts") or {})
                     if p.endswith("/tcp"))
    if blue is not None and (blue.get("State") or {}).get("Running"):
        sockets = eng.socket_table(client, blue)
        low, high = ephemeral_ports()
        both = [p for p in eng.listening(sockets)
                if (p in exposed if exposed else not low <= p <= high)]
        if both:
            return both[0]
        if sockets:  # read, and it listens on none of them
            return None
    return exposed[0] if exposed else None


def green_spec(ctx: Context, step_id: str, before: Mapping[str, Any], name: str,
               env_set: Mapping[str, str] | None = None, env_unset: tuple[str, ...] = ()
               ) -> eng.Spec:
    """Green's create spec: from the target files, or (``env_set``/``env_unset`` given and no
    target files) blue's own live configuration with the environment changed."""
    service = str(before["service"])
    number = int((before["blue"]["config"].get("Labels") or {}).get(eng.NUMBER_LABEL) or 1)
    if ctx.target_files:
        spec = load_target(ctx).spec(service, name, number=number, step_id=step_id)
    else:
        blue = eng.inspect(ctx.client, before["blue"]["id"])
        if blue is None:
            raise StepError(f"replace {service}", "blue is gone and no target files are given")
        spec = eng.spec_from_state(before["blue"], [blue], name)
        spec.body["Labels"] = {**(spec.body.get("Labels") or {}), eng.STEP_LABEL: step_id}
    if env_set or env_unset:
        env = dict(e.split("=", 1) for e in spec.body.get("Env") or [] if "=" in e)
        for key in env_unset:
            env.pop(key, None)
        env.update(env_set or {})
        spec.body["Env"] = [f"{k}={v}" for k, v in env.items()]
    return spec


def _with_switch_aliases(client: Any, spec: eng.Spec, before: Mapping[str, Any], temp: bool,
                         uses: set[str] | None = None) -> list[str]:
    """Add the old and new names as aliases, and temporary endpoints on blue's networks the
    target lacks; returns those temporary networks.

    ``uses`` (a proxy: the hosts its configuration routes to) drops a temporary network that
    green needs neither as a server (no client uses its names there) nor as a client (every
    host it routes to is served on its target networks): a proxy there would resolve its
    upstreams to addresses on that network, which vanish when it is removed."""
    blue = before["blue"]
    extra = [blue["name"]] if blue["name"] != before["to"] else []
    for net in spec.networks:  # the old name where blue's clients are: blue's own networks
        if net in blue["networks"]:
            spec.networks[net] = list(dict.fromkeys([*spec.networks[net], *extra]))
    in_use = dict(before.get("aliases_in_use") or {})
    served = _served_names(client, before, set(spec.networks)) if uses is not None else set()
    temporary = []
    for net, ep in blue["networks"].items():
        if net in spec.networks:
            continue
        try:
            client.api.inspect_network(net)
        except docker.errors.NotFound:  # removed since: nothing to join
            continue
        if uses is not None and not any(net in nets for nets in in_use.values()) \
                and uses <= served:
            continue
        spec.networks[net] = list(dict.fromkeys([*ep.get("aliases", []), *extra]))
        temporary.append(net)
    return temporary


def _served_names(client: Any, before: Mapping[str, Any], networks: set[str]) -> set[str]:
    """Names (container names, aliases) other running containers of the project answer to on
    ``networks``."""
    out: set[str] = set()
    project = str(before["blue"].get("project") or "")
    if not project:
        return out
    for found in eng.project_containers(client, project):
        if found["Id"] == before["blue"]["id"] or not (found.get("State") or {}).get("Running"):
            continue
        state = eng.container_state(found)
        for net, ep in state["networks"].items():
            if net in networks:
                out |= {state["name"], *ep.get("aliases", [])}
    return out


def nginx_hosts(client: Any, name: str) -> set[str] | None:
    """Hosts the proxy container's running nginx configuration routes to (proxy_pass hosts,
    ``set`` variables substituted, and upstream servers); None when it cannot be read."""
    from revivadiag.collect.nginx_conf import parse_files
    from revivadiag.collect.proxy_config import read_nginx_config

    files, _how = read_nginx_config(client, name)
    if not files:
        return None
    cfg = parse_files(files)
    hosts = {p.host for p in cfg.proxy_passes if p.host and p.host not in cfg.upstreams}
    hosts |= {addr.rsplit(":", 1)[0] for up in cfg.upstreams.values()
              for addr, _params in up.servers}
    return hosts


def answers_http(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when ``host:port`` answers ``HEAD /`` with an HTTP status line (any status): the
    engine's port forwarder accepts connections even while no container is behind it."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"HEAD / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


class _PortWatch:
    """``HEAD /`` to 127.0.0.1:port every 5 ms in a thread (bounded by ``max_s``): the first
    unanswered and the first answered-again times give the window."""

    def __init__(self, port: int, max_s: float) -> None:
        self.port = port
        self.max_s = max_s
        self.first_refused: float | None = None
        self.back: float | None = None
        self.attempts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _PortWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - started < self.max_s:
            ok = answers_http("127.0.0.1", self.port)
            self.attempts += 1
            now = time.monotonic()
            if not ok and self.first_refused is None:
                self.first_refused = now
            if ok and self.first_refused is not None:
                self.back = now
                return
            time.sleep(0.005)

    def wait_back(self, timeout_s: float) -> None:
        self._thread.join(timeout=timeout_s)

    @property
    def window_ms(self) -> float | None:
        if self.first_refused is None:
            return 0.0
        if self.back is None:
            return None
        return round((self.back - self.first_refused) * 1000, 1)


def _loopback_port(bindings: Mapping[str, Any]) -> int | None:
    for hosts in bindings.values():
        for h in hosts or []:
            if h.get("HostPort") and h.get("HostIp") in ("127.0.0.1", "", "0.0.0.0"):
                return int(h["HostPort"])
    return None


def _drain(ctx: Context, blue_id: str, ports: list[int]) -> dict[str, Any]:
    """Wait until blue has no established connection to ``ports`` (two polls in a row), at
    most ``ctx.drain_s``."""
    started = time.monotonic()
    quiet = 0
    left = 0
    polls = 0
    while time.monotonic() - started < ctx.drain_s:
        found = eng.inspect(ctx.client, blue_id)
        if found is None or not (found.get("State") or {}).get("Running"):
            left = 0
            break
        left = eng.established(eng.socket_table(ctx.client, found), ports,
                               set(eng.ips(found)))
        polls += 1
        quiet = quiet + 1 if left == 0 else 0
        if quiet >= 2:
            break
        time.sleep(0.25)
    return {"drain_ms": round((time.monotonic() - started) * 1000), "left": left,
            "polls": polls, "bounded": time.monotonic() - started >= ctx.drain_s}



def _shared_aliases(client: Any, old_id: str, spec: eng.Spec, in_use: Mapping[str, list[str]]
                    ) -> list[str]:
    """Networks on which the running container ``old_id`` has an alias (not its name) that
    ``spec`` gives the new container too and that a client on that network uses (``in_use``:
    name -> the clients' networks): Docker drops an alias only with the endpoint, so blue
    leaves those networks (and only those: it keeps reaching its own dependencies)."""
    found = eng.inspect(client, old_id)
    if found is None:
        return []
    state = eng.container_state(found)
    out = []
    for net, ep in state["networks"].items():
        mine = set(ep.get("aliases", [])) - {state["name"]}
        shared = mine & set(spec.networks.get(net, []))
        if any(net in in_use.get(a, []) for a in shared):
            out.append(net)
    return out



def _quiet_disconnect(client: Any, ref: str, network: str, ports: list[int],
                      max_s: float = 3.0) -> None:
    """Disconnect at a moment when no connection to ``ports`` is open on that network
    (polled in the socket table every 5 ms, at most ``max_s``): a request in flight there
    would hang, its peer's address gone. New connections can still arrive between the last
    poll and the disconnect (a few ms): clients that resolve an alias per request may see
    one of them fail."""
    found = eng.inspect(client, ref)
    ep = (((found or {}).get("NetworkSettings") or {}).get("Networks") or {}).get(network)
    address = {str((ep or {}).get("IPAddress") or "")}
    deadline = time.monotonic() + max_s
    while found is not None and ports and time.monotonic() < deadline:
        sockets = eng.socket_table(client, found)
        busy = [x for x in sockets if x.local_ip in address and x.local_port in ports
                and x.state in ("ESTABLISHED", "SYN_RECV", "NEW_SYN_RECV")]
        if not busy:
            break
        time.sleep(0.005)
    eng.disconnect(client, ref, network)



def graceful_stop(client: Any, ref: str, timeout_s: float, signal: str | None) -> float:
    """Stop ``ref`` letting its requests in flight finish: ``signal`` (a proxy's graceful
    stop, e.g. nginx's SIGQUIT) and a wait of at most ``timeout_s``, else the container's own
    stop signal through ``docker stop`` (the engine kills it after ``timeout_s``). Returns the
    ms it took."""
    t0 = time.monotonic()
    if signal:
        try:
            client.api.kill(ref, signal=signal)
        except docker.errors.APIError:
            signal = None  # not running, or the signal is refused: docker stop decides
    while signal and time.monotonic() - t0 < timeout_s:
        found = eng.inspect(client, ref)
        if found is None or not (found.get("State") or {}).get("Running"):
            break
        time.sleep(0.05)
    eng.stop(client, ref, max(1.0, timeout_s - (time.monotonic() - t0)))
    return round((time.monotonic() - t0) * 1000, 1)


def pinning_proxies(client: Any, proxies: list[str], blue_ips: list[str]) -> list[str]:
    """The proxies whose running nginx configuration names blue by *address* (an upstream
    server or a proxy_pass host that is one of ``blue_ips``): something outside nginx (a
    watcher re-resolving on its own schedule) writes it, so neither a reload nor blue
    refusing connections moves it; only blue leaving DNS while it still serves does."""
    ips = set(blue_ips)
    return [name for name in proxies if (nginx_hosts(client, name) or set()) & ips]


def _move(ctx: Context, step_id: str, old_id: str, spec: eng.Spec, *, aside: str | None,
          final: str | None, proxies: list[str], port: int | None, ports: list[int],
          stop_s: float, in_use: Mapping[str, list[str]], signal: str | None = None
          ) -> dict[str, Any]:
    """Blue-green from the running ``old_id`` to a new container of ``spec``: create, start,
    wait ready (the names clients use only then); rename old aside (``aside``) and new to
    ``final``; then one of two ways (module doc, steps 3-4):

    - *graceful* (no proxy pins old by address): reload the proxies (they resolve the names
      again), stop old gracefully — it refuses new connections at once, so a proxy moves to
      green, and its requests in flight finish within ``stop_s`` (the drain) — reload again;
    - *pinned* (a proxy names old's address, rewritten by a watcher on its own schedule):
      take old out of DNS where it shares a name clients use (a quiet moment on that
      network), reload, wait until old has no established connection (``ctx.drain_s``),
      stop it gracefully, reload again.

    Returns the new id and the figures."""
    client = ctx.client
    early = {n: [a for a in aliases if n not in in_use.get(a, [])]
             for n, aliases in spec.networks.items()}
    gid = eng.create(client, eng.Spec(spec.name, spec.body, early))
    eng.start(client, gid)
    waited = eng.wait_ready(client, gid, ctx.health_timeout_s, port)
    t_ready = time.monotonic()
    for net, aliases in spec.networks.items():
        if aliases != early[net]:  # names clients use: only once green is ready
            eng.disconnect(client, gid, net)
            eng.connect(client, gid, net, aliases)
    old = eng.inspect(client, old_id) or {}
    pinned = pinning_proxies(client, proxies, eng.ips(old)) if proxies else []
    if aside:
        eng.rename(client, old_id, aside)
    if final:
        eng.rename(client, gid, final)
    cut: list[str] = []
    served = ports or ([port] if port else [])
    if pinned:
        ctx.log(f"{step_id}: {', '.join(pinned)} name the old container by address: it "
                "leaves DNS while it serves, then drains")
        cut = _shared_aliases(client, old_id, spec, in_use)
        for net in cut:
            _quiet_disconnect(client, old_id, net, served)
    reloads = reload_proxies(client, proxies, ctx.log)
    drain = _drain(ctx, old_id, served) if pinned else {}
    stop_ms = graceful_stop(client, old_id, stop_s, signal)
    # at once (no nginx -t: tested above): until then old addresses may still be used
    reloads += reload_proxies(client, proxies, ctx.log, tested=True)
    ctx.log(f"{step_id}: the old container stopped gracefully in {stop_ms} ms (bound "
            f"{stop_s:g} s)")
    return {"id": gid, "ready_s": round(waited, 2), "how": "pinned" if pinned else "graceful",
            "out_of_dns": cut, "drain": {**drain, "stop_ms": stop_ms, "bound_s": stop_s,
                                         "signal": signal or "the image's stop signal"},
            "stop_ms": stop_ms, "proxies": reloads,
            "switch_ms": round((time.monotonic() - t_ready) * 1000, 1)}


def _published_port(client: Any, ref: str, container_port: str) -> int | None:
    found = eng.inspect(client, ref) or {}
    for b in ((found.get("NetworkSettings") or {}).get("Ports") or {}).get(container_port) or []:
        if b.get("HostPort"):
            return int(b["HostPort"])
    return None


def _wait_http(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers_http(host, port):
            return True
        time.sleep(0.05)
    return False


#: a container label naming the signal on which the service closes its WebSockets with 1001
#: and goes on serving (the lab's backend: SIGUSR1)
WS_CLOSE_LABEL = "io.revivadiag.ws-close-signal"


def ws_handoff(ctx: Context, step_id: str) -> list[str]:
    """Ask every running container of the project that declares ``WS_CLOSE_LABEL`` to close
    its WebSockets (1001, going away): before a proxy instance stops, so that the WebSockets
    through it end with a close frame and their clients reconnect through the proxy that
    takes the traffic (a proxy cannot close a WebSocket cleanly itself: stopping it cuts the
    TCP connection, a 1006 for the client)."""
    done = []
    for found in eng.project_containers(ctx.client, ctx.project):
        sig = str(((found.get("Config") or {}).get("Labels") or {}).get(WS_CLOSE_LABEL) or "")
        if not sig or not (found.get("State") or {}).get("Running"):
            continue
        try:
            ctx.client.api.kill(found["Id"], signal=sig)
        except docker.errors.APIError as exc:
            ctx.log(f"{step_id}: {eng.name_of(found)} refused {sig}: {exc}")
            continue
        done.append(f"{eng.name_of(found)}: {sig}")
    if done:
        ctx.log(f"{step_id}: WebSockets closed with 1001 by {', '.join(done)}")
    return done


def _edge_by_redirect(ctx: Context, step_id: str, blue_id: str, spec: eng.Spec, *, to: str,
                      temp: bool, aside: str, port: int | None, stop_s: float,
                      signal: str | None) -> dict[str, Any]:
    """The edge's host port moves with no refused connection (see
    :mod:`revivadiag.migrate.hostport`): an interim green published on a port the engine
    picks takes new connections through a redirect while blue stops gracefully and the final
    green starts on the port; then the redirect goes and the interim stops gracefully."""
    client = ctx.client
    bindings = spec.port_bindings
    cport, first = next((k, v[0]) for k, v in bindings.items() if v)
    host_port, host_ip = int(first["HostPort"]), str(first.get("HostIp") or "")
    host = dict(spec.body.get("HostConfig") or {})
    host["PortBindings"] = {k: [{"HostIp": b.get("HostIp", ""), "HostPort": ""} for b in v]
                            for k, v in bindings.items()}
    interim = eng.Spec(f"{to}{PROBE_SUFFIX}", {**spec.body, "HostConfig": host},
                       {n: [] for n in spec.networks})
    comment = hostport.tag(ctx.project, step_id)
    pid = eng.create(client, interim)
    try:
        eng.start(client, pid)
        proven_s = eng.wait_ready(client, pid, ctx.health_timeout_s, port)
        to_port = _published_port(client, pid, cport)
        if to_port is None or not _wait_http("127.0.0.1", to_port, 10.0):
            raise StepError(f"replace {to}", f"the interim {to}{PROBE_SUFFIX} does not answer "
                            f"HTTP on its published port {to_port}")
        gid = eng.create(client, spec)
        redirect = hostport.Redirect(comment, host_port, to_port, host_ip)
        redirect.add(ctx.log)
        try:
            t_stop = time.monotonic()
            handoffs = ws_handoff(ctx, step_id)  # clients reconnect through the interim
            stop_ms = graceful_stop(client, blue_id, stop_s, signal)
            eng.rename(client, blue_id, aside)
            if temp:
                eng.rename(client, gid, to)
            eng.start(client, gid)
            ready_s = eng.wait_ready(client, gid, ctx.health_timeout_s, port)
            green_ips = eng.ips(eng.inspect(client, gid) or {})
            inner = int(cport.split("/")[0])
            if green_ips:
                _wait_http(green_ips[0], inner, 10.0)
            held_ms = round((time.monotonic() - t_stop) * 1000, 1)
        finally:
            redirect.remove(ctx.log)
        handoffs += ws_handoff(ctx, step_id)  # and now through green
        interim_ms = graceful_stop(client, pid, stop_s, signal)
    finally:
        eng.remove(client, pid)
    return {"id": gid, "mode": "port-move+redirect", "proven_s": round(proven_s, 2),
            "stop_ms": stop_ms, "ready_s": round(ready_s, 2), "redirected_ms": held_ms,
            "interim_stop_ms": interim_ms, "window_ms": 0.0, "host_port": host_port,
            "ws_handoffs": handoffs,
            "interim_port": to_port}


#: software names (roles) of a PostgreSQL server
POSTGRES_SOFTWARE = ("postgres", "postgresql", "postgis", "timescaledb")


def _checkpoint(ctx: Context, step_id: str, blue: Mapping[str, Any]) -> str:
    """``CHECKPOINT`` in a PostgreSQL blue before it stops: its shutdown checkpoint then has
    almost nothing to write, so the stop (the clients' gap) is shorter. Best effort: a failure
    is logged and the switch goes on."""
    from revivadiag.migrate import readiness

    t0 = time.monotonic()
    try:
        readiness.Psql(ctx.client, blue).script(b"CHECKPOINT;")
    except (StepError, docker.errors.APIError) as exc:
        ctx.log(f"{step_id}: CHECKPOINT before the stop failed ({exc}); going on")
        return f"failed: {type(exc).__name__}"
    return f"done in {round((time.monotonic() - t0) * 1000)} ms"


def apply(ctx: Context, step_id: str, before: Mapping[str, Any], *, stateful: bool = False,
          env_set: Mapping[str, str] | None = None, env_unset: tuple[str, ...] = ()
          ) -> dict[str, Any]:
    """Replace blue by green (see the module doc); the result is the reference for drift."""
    client = ctx.client
    blue_state = before["blue"]
    blue = eng.inspect(client, blue_state["id"])
    if blue is None:
        raise StepError(f"replace {before['service']}", f"{blue_state['name']} is gone")
    to = str(before["to"])
    holder = eng.inspect(client, to)
    if holder is not None and holder["Id"] != blue["Id"]:
        raise StepError(f"replace {before['service']}", f"the name {to!r} is taken by another "
                        "container")
    temp = eng.name_of(blue) == to
    green_name = f"{to}{GREEN_SUFFIX}" if temp else to
    spec = green_spec(ctx, step_id, before, green_name, env_set, env_unset)
    uses = nginx_hosts(client, eng.name_of(blue)) if before.get("nginx") else None
    temporary = _with_switch_aliases(client, spec, before, temp, uses)
    port = learned_port(client, blue, spec)
    running = bool(blue["State"]["Running"])
    published = bool(spec.port_bindings)
    edge = published and before["service"] in before.get("proxy_services", [])
    stop_s = float(blue_state["config"].get("StopTimeout") or 10)
    aside = aside_name(blue_state["name"], step_id)
    proxies = list(before.get("proxies") or [])
    in_use = dict(before.get("aliases_in_use") or {})
    # nginx's graceful stop (requests in flight finish) for a proxy; else the image's own
    signal = "SIGQUIT" if before.get("nginx") else None
    listening = eng.listening(eng.socket_table(client, blue)) if running else []
    result: dict[str, Any] = {"service": before["service"], "to": to, "temporary": temporary,
                              "blue": {"id": blue["Id"], "aside": aside}}
    t0 = time.monotonic()
    if stateful or ctx.mode is Mode.IN_PLACE or not running:
        how = "stop-start" if stateful else "in-place"
        ctx.log(f"{step_id}: {how}: create {green_name}, stop {eng.name_of(blue)}, start green")
        gid = eng.create(client, spec)
        if running and before.get("software") in POSTGRES_SOFTWARE:
            result["checkpoint"] = _checkpoint(ctx, step_id, blue)
        # the renames first: between blue's exit and green's start only ``start`` remains
        eng.rename(client, blue["Id"], aside)
        if temp:
            eng.rename(client, gid, to)
        t_stop = time.monotonic()
        eng.stop(client, blue["Id"], stop_s)
        t_stopped = time.monotonic()
        eng.start(client, gid)
        t_started = time.monotonic()
        eng.wait_ready(client, gid, ctx.health_timeout_s, port)
        t_ready = time.monotonic()
        result.update(mode=how, window_ms=round((t_started - t_stopped) * 1000, 1),
                      stop_ms=round((t_stopped - t_stop) * 1000, 1),
                      ready_ms=round((t_ready - t_stop) * 1000, 1))
        result["proxies"] = reload_proxies(client, proxies, ctx.log)
    elif edge and _loopback_port(spec.port_bindings) and \
            hostport.unusable(client) is None:
        ctx.log(f"{step_id}: the edge publishes {list(spec.port_bindings)}: an interim green "
                "takes new connections through a redirect while the port moves")
        moved = _edge_by_redirect(ctx, step_id, blue["Id"], spec, to=to, temp=temp,
                                  aside=aside, port=port, stop_s=stop_s, signal=signal)
        gid = moved.pop("id")
        result.update(moved)
    elif edge:
        ctx.log(f"{step_id}: the edge publishes {list(spec.port_bindings)}: prove green "
                "unpublished, then move the port")
        probe = eng.Spec(f"{to}{PROBE_SUFFIX}", spec.without_ports().body,
                         {n: [] for n in spec.networks})
        pid = eng.create(client, probe)
        try:
            eng.start(client, pid)
            proven_s = eng.wait_ready(client, pid, ctx.health_timeout_s, port)
        finally:
            eng.remove(client, pid)
        gid = eng.create(client, spec)
        host_port = _loopback_port(spec.port_bindings)
        watch = _PortWatch(host_port, max_s=stop_s + ctx.health_timeout_s) if host_port else None
        if watch:
            watch.__enter__()
        try:
            t_stop = time.monotonic()
            eng.stop(client, blue["Id"], stop_s)
            t_stopped = time.monotonic()
            eng.start(client, gid)
            t_started = time.monotonic()
            if watch:
                watch.wait_back(10.0)
            eng.rename(client, blue["Id"], aside)
            if temp:
                eng.rename(client, gid, to)
            eng.wait_ready(client, gid, ctx.health_timeout_s, port)
        finally:
            if watch:
                watch.__exit__()
        result.update(mode="port-move", proven_s=round(proven_s, 2),
                      redirect=hostport.unusable(client),
                      stop_ms=round((t_stopped - t_stop) * 1000, 1),
                      start_ms=round((t_started - t_stopped) * 1000, 1),
                      window_ms=watch.window_ms if watch else None, host_port=host_port)
    elif published:
        ctx.log(f"{step_id}: blue-green through an unpublished interim green, then the port "
                f"{list(spec.port_bindings)} moves to the final green")
        nets = dict(spec.networks)
        interim = eng.Spec(f"{to}{PROBE_SUFFIX}", spec.without_ports().body, dict(nets))
        first = _move(ctx, step_id, blue["Id"], interim, aside=aside, final=to,
                      proxies=proxies, port=port, ports=listening, stop_s=stop_s,
                      in_use=in_use, signal=signal)
        final_spec = eng.Spec(f"{to}{GREEN_SUFFIX}", spec.body, dict(nets))
        second = _move(ctx, step_id, first["id"], final_spec, aside=f"{to}{PROBE_SUFFIX}",
                       final=to, proxies=proxies, port=port, ports=listening, stop_s=stop_s,
                       in_use=in_use, signal=signal)
        eng.remove(client, first["id"])
        gid = second["id"]
        result.update(mode="blue-green+port", window_ms=0.0, interim=first, final=second,
                      host_port_window_ms=first["stop_ms"] + second["ready_s"] * 1000)
    else:
        ctx.log(f"{step_id}: blue-green: create {green_name} beside {eng.name_of(blue)}")
        moved = _move(ctx, step_id, blue["Id"], spec, aside=aside, final=to if temp else None,
                      proxies=proxies, port=port, ports=listening, stop_s=stop_s,
                      in_use=in_use, signal=signal)
        gid = moved.pop("id")
        result.update(mode="blue-green", window_ms=0.0, **moved)
    green = eng.inspect(client, gid)
    assert green is not None
    result["green"] = {"id": gid, "name": eng.name_of(green),
                       "networks": sorted(green["NetworkSettings"]["Networks"] or {})}
    result["total_ms"] = round((time.monotonic() - t0) * 1000, 1)
    ctx.log(f"{step_id}: {before['service']} now runs as {eng.name_of(green)} "
            f"({result['mode']}, window {result.get('window_ms')} ms)")
    return result


def describe(before_hint: Mapping[str, Any], stateful: bool, mode: Mode) -> list[str]:
    """The Docker operations of a switch, one line each (the dry run)."""
    service = before_hint.get("service")
    blue = before_hint.get("from") or f"the running container of {service}"
    to = before_hint.get("to") or blue
    if stateful or mode is Mode.IN_PLACE:
        return [f"docker create {to} (target configuration of {service}, same volumes)",
                f"docker stop {blue}", f"docker rename {blue} {blue}{BLUE_SUFFIX}<step>",
                f"docker start {to}; wait until healthy", "nginx -t && nginx -s reload in the "
                "proxies"]
    return [f"docker create {to} on the target networks (aliases: service, {blue})",
            f"docker start {to}; wait until healthy (healthcheck or TCP on its port)",
            f"docker rename {blue} {blue}{BLUE_SUFFIX}<step>; disconnect it where it shares "
            "an alias", "nginx -t && nginx -s reload in the proxies",
            f"wait until {blue} has no established connection (drain)",
            f"docker stop {blue} (kept for rollback until cleanup)",
            "(a published service: green proven unpublished first, then the port moved: "
            "stop blue, start green)"]


def kept_blue(client: Any, step_id: str, before: Mapping[str, Any]) -> dict[str, Any] | None:
    """Blue as it is now: by id, else under the name it was kept under (``cleanup``'s undo
    recreates it there with a new id)."""
    found = eng.inspect(client, before["blue"]["id"])
    for name in (aside_name(before["blue"]["name"], step_id), before["blue"]["name"]):
        if found is not None:
            break
        found = eng.inspect(client, name)
        if found is not None and eng.STEP_LABEL in (found["Config"].get("Labels") or {}):
            found = None  # a green of this step, not blue
    return found


def classify(ctx: Context, step_id: str, before: Mapping[str, Any]) -> Applied:
    """not_applied: no green, blue as before; applied: green runs under the target name and
    blue is stopped aside (or gone); partial: anything between."""
    client = ctx.client
    blue_state = before["blue"]
    blue = kept_blue(client, step_id, before)
    greens = eng.step_containers(client, step_id)
    blue_as_before = blue is not None and eng.name_of(blue) == blue_state["name"] and \
        bool(blue["State"]["Running"]) == bool(blue_state["running"])
    if hostport.tagged_rules(hostport.tag(ctx.project, step_id)):
        return Applied.PARTIAL  # killed while the host port was redirected: undo removes it
    if not greens and blue_as_before:
        return Applied.NOT_APPLIED
    green_done = [g for g in greens if eng.name_of(g) == before["to"]
                  and g["State"]["Running"]]
    blue_done = blue is None or (not blue["State"]["Running"]
                                 and eng.name_of(blue) != before["to"])
    if len(greens) == 1 and green_done and blue_done:
        return Applied.APPLIED
    return Applied.PARTIAL


def undo(ctx: Context, step_id: str, before: Mapping[str, Any]) -> dict[str, Any]:
    """Give blue back exactly as captured (name, networks, aliases; started if it ran) and
    remove green, from any of the three classify states."""
    client = ctx.client
    blue_state = before["blue"]
    hostport.remove_tagged(hostport.tag(ctx.project, step_id), ctx.log)
    blue = kept_blue(client, step_id, before)
    if blue is None:
        raise StepError(f"undo {step_id}", f"{blue_state['name']} was removed (cleanup ran?): "
                        "undo the cleanup step first")
    greens = eng.step_containers(client, step_id)
    for g in greens:
        if eng.name_of(g) in (blue_state["name"], before["to"]):
            eng.rename(client, g["Id"], f"{eng.name_of(g)}{UNDO_SUFFIX}")
    if eng.name_of(blue) != blue_state["name"]:
        eng.rename(client, blue["Id"], blue_state["name"])
    restore_networks(client, blue["Id"], blue_state)
    published = bool(blue_state["host_config"].get("PortBindings"))
    stop_first = published or bool(before.get("stateful")) or any(
        eng.inspect(client, g["Id"]) and (g.get("HostConfig") or {}).get("PortBindings")
        for g in greens)
    t0 = time.monotonic()
    if stop_first:
        for g in greens:
            eng.remove(client, g["Id"])
    if blue_state["running"]:
        eng.start(client, blue["Id"])
        port = before["probe_port"] if "probe_port" in before else learned_port(
            client, None, eng.Spec("", {"ExposedPorts":
                                        blue_state["config"].get("ExposedPorts") or {}}, {}))
        eng.wait_ready(client, blue["Id"], ctx.health_timeout_s, port)
    reload_proxies(client, list(before.get("proxies") or []), ctx.log)
    for g in greens:
        eng.remove(client, g["Id"])
    reload_proxies(client, list(before.get("proxies") or []), ctx.log)
    ctx.log(f"{step_id}: undone: {blue_state['name']} back, {len(greens)} green removed")
    return {"removed": [eng.name_of(g) for g in greens],
            "ms": round((time.monotonic() - t0) * 1000, 1)}


def restore_networks(client: Any, ref: str, state: Mapping[str, Any]) -> None:
    """Make the container's endpoints those of ``state`` (networks and aliases)."""
    found = eng.inspect(client, ref)
    assert found is not None
    now = eng.container_state(found)["networks"]
    want = state["networks"]
    for net in now:
        if net not in want:
            eng.disconnect(client, ref, net)
    endpoints = (found.get("NetworkSettings") or {}).get("Networks") or {}
    for net, ep in want.items():
        have = now.get(net)
        if have is not None and sorted(have["aliases"]) == sorted(ep["aliases"]) and \
                _same_network(client, net, (endpoints.get(net) or {}).get("NetworkID")):
            continue
        if have is not None:
            eng.disconnect(client, ref, net)
        eng.connect(client, ref, net, ep["aliases"])


def _same_network(client: Any, name: str, network_id: str | None) -> bool:
    """Whether the endpoint's network id is the live network's (a network removed and made
    again by an undo has a new id: a stopped container still naming the old one would not
    start)."""
    try:
        return not network_id or client.api.inspect_network(name).get("Id") == network_id
    except docker.errors.NotFound:
        return False


def drift(ctx: Context, result: Mapping[str, Any]) -> list[str]:
    """What no longer matches what the switch left: green gone, renamed, stopped, off one of
    its networks; blue (kept aside) gone or running."""
    out = []
    green = eng.inspect(ctx.client, result["green"]["id"])
    if green is None:
        return [f"{result['green']['name']} (green) no longer exists"]
    if eng.name_of(green) != result["green"]["name"]:
        out.append(f"green is named {eng.name_of(green)}, not {result['green']['name']}")
    if not green["State"]["Running"]:
        out.append(f"{eng.name_of(green)} is not running")
    nets = set(green["NetworkSettings"]["Networks"] or {})
    missing = sorted(set(result["green"]["networks"]) - nets)
    if missing:
        out.append(f"{eng.name_of(green)} left {', '.join(missing)}")
    blue = eng.inspect(ctx.client, result["blue"]["id"])
    if blue is None:
        out.append(f"{result['blue']['aside']} (blue, kept for rollback) no longer exists")
    elif blue["State"]["Running"]:
        out.append(f"{eng.name_of(blue)} (blue) runs again")
    return out
