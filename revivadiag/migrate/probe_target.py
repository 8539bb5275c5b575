"""Where the migration prober sends its traffic, learned from the stack.

:func:`probe_target` reads the project through the Docker API, decides the roles
(:mod:`revivadiag.collect.roles`) and takes the *proxy*'s port published on the host's
loopback. The prober sends traffic to 127.0.0.1 only: a proxy published on another address
only, or not at all, raises :class:`~revivadiag.errors.NoProxyPort` unless the plan's
``prober.port`` names the loopback port to use.

What is sent is the plan's ``prober:`` section (:mod:`revivadiag.migrate.probe_config`), and
for each part it leaves out, learned and checked once before the migration:

- HTTP paths: ``/`` and the backend's health path behind the proxy's route to it (the
  backend's route, e.g. ``/api/``, joined with the path of its own healthcheck); each
  default path is kept only when it answers 2xx/3xx now;
- WebSocket: the seed's ``/ws`` (:data:`revivadiag.seed.WEBSOCKET_PATH`), kept only when a
  handshake and an echo succeed now, else *skipped* with the reason;
- session: the seed's login (:data:`revivadiag.seed.LOGIN_PATH`, then the profile), with the
  password from ``$LAB_USER_PASSWORD``, else the lab's stored state, else the seed's test
  user; kept only when that login succeeds now, else *skipped* with the reason.

No HTTP or WebSocket proxy configured in the environment is used (``trust_env=False``,
``proxy=None``): every request goes to the loopback address itself.

Parts the plan names explicitly are not skipped: when they do not answer now, a typed error
says so (nothing has been sent beyond those checks).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import httpx
import pandas as pd

from revivadiag import seed
from revivadiag.collect.containers import parse_containers, parse_ports
from revivadiag.collect.inventory import gather
from revivadiag.collect.networks import parse_endpoints
from revivadiag.collect.roles import Roles, infer_roles
from revivadiag.collect.stack import collect_roles
from revivadiag.errors import (
    CredentialsError,
    LabError,
    NoProxyPort,
    PlanError,
    ProberError,
)
from revivadiag.migrate.probe_config import MARKER, ProberConfig, parse_prober_section

LOOPBACK = "127.0.0.1"
DEFAULT_RATE = 20.0
DEFAULT_DEADLINE_S = 2.0
#: time each checking request before the migration may take (a check, not a measurement:
#: a loaded machine must not turn a working part into a skipped one)
CHECK_TIMEOUT_S = 30.0
#: environment variable read for the login password when the plan names none
PASSWORD_ENV = "LAB_USER_PASSWORD"  # noqa: S105 - a variable name, not a value
_ANY_ADDRESS = ("", "0.0.0.0", "::", LOOPBACK)


@dataclass(frozen=True, kw_only=True)
class ResolvedSession:
    """A session ready to run: ``body`` holds the secret values (never shown by ``repr``)."""

    #: login (then check with its cookie/token) or write (then check shows what was written)
    mode: str
    path: str
    body: Mapping[str, Any] = field(default_factory=dict, repr=False)
    check: str
    expect: str = ""
    #: the body fields whose values came from the environment (names only)
    secret_fields: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class ProbeTarget:
    """What the prober sends where. ``skipped``: part -> why it does not run."""

    project: str
    port: int
    http: tuple[str, ...] = ("/",)
    host: str = LOOPBACK
    websocket: str | None = None
    session: ResolvedSession | None = None
    proxy: str = ""
    rate: float = DEFAULT_RATE
    deadline_s: float = DEFAULT_DEADLINE_S
    skipped: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def url(self, path: str) -> str:
        """``http://127.0.0.1:<port><path>``.

        >>> ProbeTarget("p", 3010).url("/api/health")
        'http://127.0.0.1:3010/api/health'
        """
        return f"http://{self.host}:{self.port}{path}"

    def ws_url(self, path: str) -> str:
        """``ws://127.0.0.1:<port><path>``."""
        return f"ws://{self.host}:{self.port}{path}"

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (no secret: the session's field names only)."""
        session = None
        if self.session is not None:
            s = self.session
            session = {"mode": s.mode, "path": s.path, "check": s.check, "source": s.source,
                       "secret_fields": list(s.secret_fields)}
        return {"project": self.project, "proxy": self.proxy, "host": self.host,
                "port": self.port, "http": list(self.http), "websocket": self.websocket,
                "session": session, "rate": self.rate, "deadline_s": self.deadline_s,
                "skipped": dict(self.skipped), "notes": list(self.notes)}


# ---------------------------------------------------------------- pure choices


def choose_port(ports: pd.DataFrame, proxy: str, role_port: int | None
                ) -> tuple[str, int] | None:
    """(loopback address, host port) the proxy publishes, its role's port first; None when
    it publishes no TCP port reachable on loopback.

    >>> from revivadiag.schemas import to_frame
    >>> f = to_frame("ports", [
    ...     {"service": "proxy", "container_port": 443, "protocol": "tcp",
    ...      "host_ip": "0.0.0.0", "host_port": 8443},
    ...     {"service": "proxy", "container_port": 80, "protocol": "tcp",
    ...      "host_ip": "127.0.0.1", "host_port": 8080},
    ...     {"service": "proxy", "container_port": 80, "protocol": "tcp",
    ...      "host_ip": "192.0.2.7", "host_port": 9000}])
    >>> choose_port(f, "proxy", 80), choose_port(f, "proxy", None), choose_port(f, "api", 80)
    (('127.0.0.1', 8080), ('127.0.0.1', 8080), None)
    """
    rows = [r for r in ports.to_dict("records")
            if r["service"] == proxy and r["protocol"] == "tcp" and not pd.isna(r["host_port"])
            and (r["host_ip"] in _ANY_ADDRESS or str(r["host_ip"]).startswith("127."))]
    if not rows:
        return None
    rows.sort(key=lambda r: (r["container_port"] != role_port, int(r["container_port"]),
                             r["host_ip"] != LOOPBACK))
    best = rows[0]
    host = str(best["host_ip"]) if str(best["host_ip"]).startswith("127.") else LOOPBACK
    return host, int(best["host_port"])


def default_http_paths(roles: Roles) -> list[str]:
    """``/`` and the backend's health path as the proxy serves it (route + healthcheck path).

    >>> r = Roles.from_rows([{"service": "api", "role": "backend", "route": "/api/",
    ...                       "http_path": "/healthz"}])
    >>> default_http_paths(r)
    ['/', '/api/healthz']
    >>> default_http_paths(Roles.from_rows([{"service": "b", "role": "backend",
    ...     "route": "/api/", "http_path": "/api/health"}]))
    ['/', '/api/health']
    >>> default_http_paths(Roles.from_rows([]))
    ['/']
    """
    paths = ["/"]
    backend = roles.service("backend")
    route = roles.route(backend).strip("=~^* ")
    health = roles.http_path(backend)
    if backend and route.startswith("/") and health.startswith("/"):
        prefix = route.rstrip("/")
        # a health path already under the route is served as it is; else the proxy's route
        # is put in front of it
        paths.append(health if health.startswith(prefix + "/") else prefix + health)
    return list(dict.fromkeys(paths))


def session_body(fields: Mapping[str, Any], secret_env: Mapping[str, str],
                 environ: Mapping[str, str], origin: str = "<plan>") -> dict[str, Any]:
    """The JSON body: plain fields plus each ``<field>_env`` read from ``environ``.

    >>> session_body({"email": "a@b.c"}, {"password": "PW"}, {"PW": "x"})["password"]
    'x'
    >>> session_body({}, {"password": "PW"}, {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    revivadiag.errors.PlanError: plan <plan>: prober.session: password_env names PW, ...
    """
    body = dict(fields)
    for name, var in secret_env.items():
        value = environ.get(var)
        if not value:
            raise PlanError(origin, f"prober.session: {name}_env names {var}, which is not set "
                                    "in the environment")
        body[name] = value
    return body


# ---------------------------------------------------------------- learning from the stack


def _frames(client: Any, project: str) -> tuple[pd.DataFrame, Roles, list[str]]:
    inv = gather(client, project)
    frames = {"containers": parse_containers(inv.containers, inv.vanished, inv.project),
              "endpoints": parse_endpoints(inv.containers, inv.project),
              "ports": parse_ports(inv.containers, inv.project)}
    notes: list[str] = []
    try:
        roles_frame, facts = collect_roles(client, inv, frames)
        notes += facts.notes
    except (docker.errors.DockerException, OSError) as exc:
        notes.append(f"roles decided from the API frames only ({type(exc).__name__})")
        roles_frame = infer_roles(frames["containers"], endpoints=frames["endpoints"])
    return frames["ports"], Roles(roles_frame), notes


def _get(client: httpx.Client, url: str) -> str:
    """'' when ``url`` answers 2xx/3xx, else why not."""
    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return "" if 200 <= response.status_code < 400 else f"HTTP {response.status_code}"


def _websocket_ok(url: str, deadline_s: float) -> str:
    """'' when a handshake and one echo succeed at ``url``, else why not."""
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    try:
        with connect(url, open_timeout=deadline_s, close_timeout=deadline_s, proxy=None) as ws:
            ws.send("revivadiag-probe-check")
            answer = ws.recv(timeout=deadline_s)
    except InvalidStatus as exc:
        return f"the handshake answered HTTP {exc.response.status_code}"
    except (WebSocketException, OSError, TimeoutError) as exc:
        return type(exc).__name__
    return "" if answer == "revivadiag-probe-check" else "the answer is not an echo"


def _default_password(project: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """(password, where it came from) for the seed's login."""
    if environ.get(PASSWORD_ENV):
        return environ[PASSWORD_ENV], f"${PASSWORD_ENV}"
    try:
        from revivadiag.lab.state import read_secrets

        stored = read_secrets(project).get(PASSWORD_ENV)
    except (LabError, ValueError):
        stored = None
    if stored:
        return stored, "the lab's state"
    return seed.TEST_USER_PASSWORD, "the seed's test user"


def _session(cfg: ProberConfig, project: str, target: ProbeTarget, environ: Mapping[str, str],
             origin: str) -> tuple[ResolvedSession | None, str]:
    """(the session, '') or (None, why it is skipped)."""
    if cfg.session_off:
        return None, "disabled by the plan (prober.session: false)"
    given = cfg.session
    if given is not None:
        body = session_body(given.fields, given.secret_env, environ, origin)
        session = ResolvedSession(mode=given.mode, path=given.path, check=given.check,
                                  expect=given.expect, body=body,
                                  secret_fields=tuple(given.secret_env), source="the plan")
    else:
        password, where = _default_password(project, environ)
        session = ResolvedSession(mode="login", path=seed.LOGIN_PATH,
                                  check=seed.PROFILE_PATH, expect=seed.TEST_USER_EMAIL,
                                  body={"email": seed.TEST_USER_EMAIL, "password": password},
                                  secret_fields=("password",),
                                  source=f"the seed's login (password from {where})")
    if session.mode == "write":
        return session, ""  # checked by writing, which the run does once
    try:
        with httpx.Client(timeout=max(target.deadline_s, CHECK_TIMEOUT_S), trust_env=False) as http:
            response = http.post(target.url(session.path), json=dict(session.body))
    except httpx.HTTPError as exc:
        why = f"POST {session.path} failed: {type(exc).__name__}"
    else:
        if 200 <= response.status_code < 300:
            return session, ""
        why = f"POST {session.path} answered HTTP {response.status_code}"
        if given is not None and response.status_code in (401, 403):
            raise CredentialsError(f"the login at {session.path}",
                                   f"HTTP {response.status_code}")
    if given is not None:
        raise ProberError(project, f"the plan's session login: {why}")
    return None, f"the stack offers no login the prober can use ({why})"


def probe_target(client: Any, project: str, plan_prober: Mapping[str, Any] | ProberConfig |
                 None = None, *, environ: Mapping[str, str] | None = None,
                 origin: str = "<plan>") -> ProbeTarget:
    """The prober's target for ``project`` (see the module doc). ``plan_prober`` is the
    plan's ``prober:`` section; ``environ`` (default ``os.environ``) holds the secrets it
    names. Raises NoProxyPort, ProberError, CredentialsError or PlanError; sends only a few
    checking requests to 127.0.0.1."""
    cfg = parse_prober_section(plan_prober, origin)
    env = os.environ if environ is None else environ
    ports, roles, notes = _frames(client, project)
    proxy = roles.service("proxy") or ""
    host = LOOPBACK
    if cfg.port is not None:
        port = cfg.port
        notes.append(f"port {port} given by the plan")
    else:
        found = choose_port(ports, proxy, roles.port(proxy)) if proxy else None
        if found is None:
            detail = (f"service {proxy!r} publishes no TCP port on loopback or all addresses"
                      if proxy else "no service holds the proxy role")
            raise NoProxyPort(project, proxy, detail)
        host, port = found
    deadline = cfg.deadline_s or DEFAULT_DEADLINE_S
    target = ProbeTarget(project, port, host=host, proxy=proxy, rate=cfg.rate or DEFAULT_RATE,
                         deadline_s=deadline)
    skipped: dict[str, str] = {}
    with httpx.Client(timeout=max(deadline, CHECK_TIMEOUT_S), trust_env=False) as http:
        if cfg.http is not None:
            for path in cfg.http:
                why = _get(http, target.url(path))
                if why:
                    raise ProberError(project, f"prober.http {path} does not answer on "
                                               f"{host}:{port} before the migration ({why})")
            paths = list(cfg.http)
        else:
            paths = []
            for path in default_http_paths(roles):
                why = _get(http, target.url(path))
                if why:
                    notes.append(f"http {path} left out: {why}")
                else:
                    paths.append(path)
            if not paths:
                raise ProberError(project, f"nothing answers on {host}:{port} "
                                           f"({'; '.join(notes[-2:])})")
    ws: str | None = None
    if cfg.websocket_off:
        skipped["websocket"] = "disabled by the plan (prober.websocket: false)"
    else:
        candidate = cfg.websocket or seed.WEBSOCKET_PATH
        why = _websocket_ok(target.ws_url(candidate), max(deadline, CHECK_TIMEOUT_S))
        if not why:
            ws = candidate
        elif cfg.websocket:
            raise ProberError(project, f"prober.websocket {candidate} does not echo ({why})")
        else:
            skipped["websocket"] = f"the stack offers no WebSocket echo at {candidate} ({why})"
    session, why = _session(cfg, project, target, env, origin)
    if session is None:
        skipped["session"] = why
    return ProbeTarget(project, port, tuple(paths), host=host, websocket=ws, session=session,
                       proxy=proxy, rate=target.rate, deadline_s=deadline, skipped=skipped,
                       notes=tuple(notes))


def new_marker() -> str:
    """A token unique to one run (what a ``write`` session writes and reads back)."""
    return f"rdp{secrets.token_hex(6)}"


__all__ = ["MARKER", "ProbeTarget", "ResolvedSession", "choose_port", "default_http_paths",
           "new_marker", "probe_target", "session_body"]
