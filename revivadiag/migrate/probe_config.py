"""The plan's ``prober:`` section: what the migration prober sends, parsed and checked.

Every key is optional; what is absent is learned from the stack
(:func:`revivadiag.migrate.probe_target.probe_target`)::

    prober:
      port: 3010                 # the proxy's loopback port, when the proxy publishes none
      http: ["/", "/api/health"] # GET, round robin, at `rate` requests/s
      rate: 20                   # requests/s of the HTTP stream
      deadline_s: 2              # a request without a correct answer by then has failed
      websocket: /ws             # or false: no WebSocket client
      session:                   # or false: no session check
        login: {path: /api/auth/login, json: {email: a@b.c, password_env: LAB_USER_PASSWORD}}
        check: /api/user/profile # read with the session during and after the migration
        expect: a@b.c            # optional text the check's answer must hold
      # or, for a stack without logins, a write that must be readable afterwards:
      # session: {write: {path: /api/items, json: {name: "probe-{marker}"}}, check: /api/items}

In ``json``, a key ``<field>_env: VAR`` sets ``<field>`` from the environment variable
``VAR`` when the prober starts: a plan never holds a secret. ``{marker}`` in a write's value
is replaced by a token unique to the run; the check passes when its answer holds it.

Paths are paths only (``/x``): the host is always 127.0.0.1.

>>> cfg = parse_prober_section({"http": ["/", "/api/health"], "websocket": False,
...     "session": {"login": {"path": "/api/auth/login",
...                           "json": {"email": "a@b.c", "password_env": "PW"}},
...                 "check": "/api/user/profile"}})
>>> cfg.http, cfg.websocket, cfg.websocket_off, cfg.session.mode, cfg.session.secret_env
(('/', '/api/health'), None, True, 'login', {'password': 'PW'})
>>> parse_prober_section({"http": ["//elsewhere.example/"]})
Traceback (most recent call last):
...
revivadiag.errors.PlanError: plan <plan>: prober.http: '//elsewhere.example/' is not a path ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from revivadiag.errors import PlanError

MARKER = "{marker}"
_PATH = re.compile(r"^/(?!/)[^\s\\@#]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYS = {"port", "http", "rate", "deadline_s", "websocket", "session"}


@dataclass(frozen=True)
class SessionConfig:
    """A session that must survive: ``login`` (then ``check`` with its cookie/token) or
    ``write`` (then ``check`` must show what was written). ``fields`` are the JSON body's
    plain values; ``secret_env`` maps a body field to the environment variable holding it."""

    mode: str
    path: str
    check: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    secret_env: Mapping[str, str] = field(default_factory=dict)
    expect: str = ""


@dataclass(frozen=True)
class ProberConfig:
    """The ``prober:`` section, parsed. None: learn it from the stack."""

    port: int | None = None
    http: tuple[str, ...] | None = None
    rate: float | None = None
    deadline_s: float | None = None
    websocket: str | None = None
    websocket_off: bool = False
    session: SessionConfig | None = None
    session_off: bool = False


def check_path(value: object, where: str, origin: str = "<plan>") -> str:
    """``value`` if it is a URL path on the proxy (``/x``), else PlanError.

    >>> check_path("/api/health", "prober.http")
    '/api/health'
    >>> check_path("http://10.0.0.1/", "prober.http")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    revivadiag.errors.PlanError: plan <plan>: prober.http: 'http://10.0.0.1/' is not a path ...
    """
    if not isinstance(value, str) or not _PATH.match(value):
        raise PlanError(origin, f"{where}: {value!r} is not a path on the proxy "
                                "(one starting with a single /; the host is always 127.0.0.1)")
    return value


def _number(data: Mapping[str, Any], key: str, origin: str, low: float, high: float
            ) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise PlanError(origin, f"prober.{key}: {value!r} is not a number in {low}..{high}")
    return float(value)


def _body(data: object, where: str, origin: str) -> tuple[dict[str, Any], dict[str, str]]:
    if data is None:
        return {}, {}
    if not isinstance(data, Mapping):
        raise PlanError(origin, f"{where}.json: a mapping of fields is expected")
    fields: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for key, value in data.items():
        key = str(key)
        if key.endswith("_env"):
            if not isinstance(value, str) or not _ENV_NAME.match(value):
                raise PlanError(origin, f"{where}.json.{key}: the name of an environment "
                                        "variable is expected")
            secrets[key[: -len("_env")]] = value
        elif isinstance(value, (str, int, float, bool)) or value is None:
            fields[key] = value
        else:
            raise PlanError(origin, f"{where}.json.{key}: a plain value is expected")
    return fields, secrets


def parse_session(data: object, origin: str = "<plan>") -> SessionConfig:
    """The ``session:`` mapping: exactly one of ``login`` / ``write``, and ``check``."""
    if not isinstance(data, Mapping):
        raise PlanError(origin, "prober.session: a mapping (login or write, and check) or "
                                "false is expected")
    unknown = set(data) - {"login", "write", "check", "expect"}
    if unknown:
        raise PlanError(origin, f"prober.session: unknown keys {sorted(unknown)}")
    modes = [m for m in ("login", "write") if m in data]
    if len(modes) != 1:
        raise PlanError(origin, "prober.session: give exactly one of login or write")
    mode = modes[0]
    spec = data[mode]
    if not isinstance(spec, Mapping) or "path" not in spec:
        raise PlanError(origin, f"prober.session.{mode}: a mapping with path (and json) "
                                "is expected")
    path = check_path(spec["path"], f"prober.session.{mode}.path", origin)
    fields, secrets = _body(spec.get("json"), f"prober.session.{mode}", origin)
    if mode == "write" and not any(MARKER in str(v) for v in fields.values()):
        raise PlanError(origin, f"prober.session.write.json: one value must hold {MARKER}, "
                                "so that the check can find what was written")
    if "check" not in data:
        raise PlanError(origin, "prober.session.check: the path read with the session is "
                                "missing")
    expect = data.get("expect", "")
    if not isinstance(expect, str):
        raise PlanError(origin, "prober.session.expect: a string is expected")
    return SessionConfig(mode=mode, path=path,
                         check=check_path(data["check"], "prober.session.check", origin),
                         fields=fields, secret_env=secrets, expect=expect)


def parse_prober_section(data: object, origin: str = "<plan>") -> ProberConfig:
    """The plan's ``prober:`` value (None or a mapping) as a :class:`ProberConfig`;
    :class:`~revivadiag.errors.PlanError` naming the key for anything malformed."""
    if data is None:
        return ProberConfig()
    if isinstance(data, ProberConfig):
        return data
    if not isinstance(data, Mapping):
        raise PlanError(origin, "prober: a mapping is expected")
    unknown = set(data) - _KEYS
    if unknown:
        raise PlanError(origin, f"prober: unknown keys {sorted(unknown)} "
                                f"(known: {', '.join(sorted(_KEYS))})")
    port = data.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 0 < port < 65536):
        raise PlanError(origin, f"prober.port: {port!r} is not a TCP port")
    http = data.get("http")
    if http is not None:
        if isinstance(http, str):
            http = [http]
        if not isinstance(http, list) or not http:
            raise PlanError(origin, "prober.http: a non-empty list of paths is expected")
        http = tuple(check_path(p, "prober.http", origin) for p in http)
    ws = data.get("websocket")
    ws_off = ws is False
    if ws is not None and not ws_off:
        ws = check_path(ws, "prober.websocket", origin)
    session_data = data.get("session")
    session_off = session_data is False
    session = (parse_session(session_data, origin)
               if session_data is not None and not session_off else None)
    return ProberConfig(port=port, http=http,
                        rate=_number(data, "rate", origin, 0.1, 200.0),
                        deadline_s=_number(data, "deadline_s", origin, 0.05, 60.0),
                        websocket=None if ws_off else ws, websocket_off=ws_off,
                        session=session, session_off=session_off)
