"""The expected access policy and its comparison with observed reachability.

The default policy is the seed's access control matrix written in *roles* (proxy, backend,
database, cache), shipped as ``revivadiag/analyze/default_policy.yml``; :func:`load_policy`
reads that file or your own and raises :class:`~revivadiag.errors.PolicyError` naming the
problem when it is malformed. A rule's ``from``/``to`` is a role (``proxy``), a service
(``web``, or ``service:backend`` for a service named like a role), or a name mapped through
``services:``; ``port`` is a number, ``any``, or a role meaning that role's learned port.
:meth:`Policy.bind` applies it to the services that hold those roles in one stack
(:class:`~revivadiag.collect.roles.Roles`); names the stack lacks are reported, never dropped
in silence.

>>> policy, problems = load_policy().bind({"nginx": "proxy", "api": "backend",
...     "db": "database", "cache": "cache"}, {"nginx": 80, "api": 8000, "db": 5432})
>>> policy.expected("nginx", "db", 5432), policy.expected("nginx", "api", 8000)
('deny', 'allow')
>>> policy.expected("api", "nginx", 80) is None      # a "-" cell: not judged
True
>>> [(p.service, p.container_port) for p in policy.allowed_external("production")]
[('nginx', 80)]

:func:`compare` turns the ``reachability`` frame into the ``violations`` frame: a denied
path that is ``open`` is a *violation*; one that is ``refused`` reached the target host
(nothing listens, but nothing isolates either) and is *refused_not_dropped*; ``timeout``
and ``unresolvable`` are properly isolated (*ok*); an allowed path that is not open is
*blocked*; a probe that itself failed (``error``) is *inconclusive*.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from revivadiag import schemas, yamlio
from revivadiag.collect.roles import ROLES
from revivadiag.errors import PolicyError

ACTIONS = ("allow", "deny")
DEFAULTS = ("ignore", "allow", "deny")
ANY_PORT = ("any", "*")
DEFAULT_POLICY_NAME = "default_policy.yml"
SERVICE_PREFIX = "service:"
ROLE_PREFIX = "role:"
#: what a judged path's expectation rests on (the ``basis`` column of ``violations``)
BASES = ("policy", "default", "declared")

_TOP_KEYS = {"version", "description", "services", "default", "rules", "external", "roles",
             "conventions"}
_CONVENTION_KEYS = {"naming", "host_ports"}
_RULE_KEYS = {"from", "to", "port", "action", "protocol", "severity", "note"}
SEVERITIES = ("error", "warning", "info")
_EXTERNAL_KEYS = {"service", "port", "host_port", "protocol", "note"}
_ENV_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Rule:
    """``source`` may (allow) or must not (deny) connect to ``target:port`` (None = any port)."""

    source: str
    target: str
    port: int | None
    action: str
    protocol: str = "tcp"
    severity: str = "error"
    #: the port is this role's learned port (``port: backend``); bound to a number by bind()
    port_role: str | None = None

    def describe(self) -> str:
        """``proxy -> database:any deny``."""
        port = self.port_role or ("any" if self.port is None else str(self.port))
        return f"{_plain(self.source)} -> {_plain(self.target)}:{port} {self.action}"


@dataclass(frozen=True)
class ExternalPort:
    """A port an environment may publish: the service's container port and its host port."""

    service: str
    container_port: int
    host_port: int
    #: the port is this role's learned port (``port: proxy``); bound to a number by bind()
    port_role: str | None = None


@dataclass(frozen=True)
class Policy:
    """Expected internal paths and allowed published ports, in roles and/or service names.

    ``bound`` is true for the result of :meth:`bind`: every name is then a service of one
    stack and every port a number.
    """

    rules: tuple[Rule, ...]
    external: Mapping[str, tuple[ExternalPort, ...]]
    default: str = "ignore"
    origin: str = "<default>"
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: role -> services the policy assigns to it (``roles:``)
    roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the seed's conventions asked for: ``naming`` (e.g. "{project}_{service}"), ``host_ports``
    conventions: Mapping[str, Any] = field(default_factory=dict)
    bound: bool = False

    def rule_for(self, source: str, target: str, port: int) -> Rule | None:
        """The rule that judges ``source -> target:port``: an exact port beats ``any``."""
        def key(r: Rule) -> tuple[str, str, int | None]:
            return _plain(r.source), _plain(r.target), r.port

        exact = [r for r in self.rules if r.port_role is None
                 and key(r) == (source, target, port)]
        if exact:
            return exact[0]
        wild = [r for r in self.rules if r.port_role is None and key(r) == (source, target, None)]
        return wild[0] if wild else None

    def expected(self, source: str, target: str, port: int) -> str | None:
        """``allow``, ``deny``, or None when the policy says nothing about that path.

        Names are matched literally: bind a policy written in roles first (:meth:`bind`).
        """
        rule = self.rule_for(source, target, port)
        if rule is not None:
            return rule.action
        return None if self.default == "ignore" else self.default

    def allowed_external(self, environment: str) -> tuple[ExternalPort, ...]:
        """Published ports ``environment`` allows; PolicyError for an unknown environment."""
        try:
            return self.external[environment]
        except KeyError:
            known = ", ".join(self.external) or "none"
            raise PolicyError(
                self.origin, f"no external section for environment {environment!r} (known: {known})"
            ) from None

    @property
    def services(self) -> list[str]:
        """Every name (service or role) the policy's rules and external ports use."""
        names = {r.source for r in self.rules} | {r.target for r in self.rules}
        names |= {p.service for ports in self.external.values() for p in ports}
        return sorted(_plain(n) for n in names)

    def bind(self, roles: Mapping[str, str], ports: Mapping[str, int | None] | None = None
             ) -> tuple[Policy, list[str]]:
        """(this policy applied to one stack, problems).

        ``roles``: service -> role of every service of the stack; ``ports``: service -> its
        learned port. A rule naming a role expands to every service holding it; ``port:
        <role>`` becomes that service's learned port. A role no service holds, or a service
        the stack lacks, is a problem (the rule is then left out).
        """
        return _bind(self, roles, ports or {})


# ---------------------------------------------------------------- loading


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy YAML file (the seed's matrix when ``path`` is None)."""
    if path is None:
        text = resources.files("revivadiag.analyze").joinpath(DEFAULT_POLICY_NAME).read_text()
        return parse_policy(text, origin=f"<default {DEFAULT_POLICY_NAME}>")
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise PolicyError(str(p), f"cannot read: {exc.strerror or exc}") from exc
    return parse_policy(text, origin=str(p))


def parse_policy(text: str, origin: str = "<string>") -> Policy:
    """Parse and validate policy YAML text; PolicyError names the offending key or value."""
    try:
        data = yamlio.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise PolicyError(origin, f"{where}not valid YAML ({problem})") from exc
    if not isinstance(data, dict):
        raise PolicyError(origin, "expected a mapping at the top level")
    _no_unknown_keys(origin, "top level", data, _TOP_KEYS)
    if data.get("version", 1) != 1:
        raise PolicyError(origin, f"unsupported version {data.get('version')!r} (expected 1)")
    aliases = _parse_aliases(origin, data.get("services") or {})
    default = data.get("default", "ignore")
    if default not in DEFAULTS:
        raise PolicyError(origin, f"default: unknown value {default!r}; expected one of {DEFAULTS}")
    rules = _parse_rules(origin, data.get("rules") or [], aliases)
    external = _parse_external(origin, data.get("external") or {}, aliases)
    roles = _parse_roles(origin, data.get("roles") or {})
    conventions = _parse_conventions(origin, data.get("conventions") or {})
    return Policy(rules, external, default=default, origin=origin, aliases=aliases, roles=roles,
                  conventions=conventions)


def _parse_roles(origin: str, data: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(data, dict):
        raise PolicyError(origin, "roles: expected a mapping role -> service or list of services")
    out: dict[str, tuple[str, ...]] = {}
    for role, services in data.items():
        if role not in ROLES:
            raise PolicyError(origin, f"roles: unknown role {role!r}; expected one of "
                                      f"{', '.join(ROLES)}")
        names = [services] if isinstance(services, str) else services
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip()
                                                  for n in names):
            raise PolicyError(origin, f"roles.{role}: expected a service name or a list of them")
        out[str(role)] = tuple(n.strip() for n in names)
    return out


def _parse_conventions(origin: str, data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PolicyError(origin, "conventions: expected a mapping")
    _no_unknown_keys(origin, "conventions", data, _CONVENTION_KEYS)
    naming = data.get("naming")
    if naming is not None and (not isinstance(naming, str) or "{service}" not in naming):
        raise PolicyError(origin, f"conventions.naming: expected a pattern with {{service}} "
                                  f"(e.g. '{{project}}_{{service}}'), got {naming!r}")
    if "host_ports" in data and not isinstance(data["host_ports"], bool):
        raise PolicyError(origin, "conventions.host_ports: expected true or false")
    return dict(data)


def _no_unknown_keys(origin: str, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise PolicyError(
            origin,
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
        )


def _parse_aliases(origin: str, data: object) -> dict[str, str]:
    if not isinstance(data, dict):
        raise PolicyError(origin, "services: expected a mapping NAME: compose_service")
    out: dict[str, str] = {}
    for name, service in data.items():
        if not isinstance(service, str) or not service.strip():
            raise PolicyError(origin, f"services.{name}: expected a compose service name")
        out[str(name)] = service.strip()
    return out


def resolve_service(name: object, aliases: Mapping[str, str], origin: str, where: str) -> str:
    """A policy name as stored: ``service:<name>`` through the alias map (case-insensitive),
    else the lower-cased name (a role when it is one, else a service; see :func:`_plain`)."""
    if not isinstance(name, str) or not name.strip():
        raise PolicyError(origin, f"{where}: expected a service name, got {name!r}")
    folded = {k.casefold(): v for k, v in aliases.items()}
    key = name.strip().casefold()
    if key in folded:
        return SERVICE_PREFIX + folded[key]
    return name.strip().lower()


def _plain(name: str) -> str:
    """A stored name without its ``service:``/``role:`` prefix."""
    for prefix in (SERVICE_PREFIX, ROLE_PREFIX):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def role_of_name(name: str) -> str | None:
    """The role a stored policy name stands for, or None for a service name.

    >>> role_of_name("backend"), role_of_name("role:cache"), role_of_name("service:backend")
    ('backend', 'cache', None)
    """
    if name.startswith(SERVICE_PREFIX):
        return None
    plain = _plain(name)
    return plain if plain in ROLES else None


def _port_role(value: object) -> str | None:
    if isinstance(value, str) and value.strip().lower() in ROLES:
        return value.strip().lower()
    return None


def _port(value: object, origin: str, where: str, *, allow_any: bool) -> int | None:
    if allow_any and isinstance(value, str) and value.strip().lower() in ANY_PORT:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        hint = "an integer 1..65535, a role" + (" or 'any'" if allow_any else "")
        raise PolicyError(origin, f"{where}: bad port {value!r}; expected {hint}")
    return value


def _parse_rules(origin: str, data: object, aliases: Mapping[str, str]) -> tuple[Rule, ...]:
    if not isinstance(data, list):
        raise PolicyError(origin, "rules: expected a list")
    rules: list[Rule] = []
    seen: dict[tuple[str, str, int | str | None], int] = {}
    for i, item in enumerate(data):
        where = f"rules[{i}]"
        if not isinstance(item, dict):
            raise PolicyError(origin, f"{where}: expected a mapping with from, to, port, action")
        _no_unknown_keys(origin, where, item, _RULE_KEYS)
        for key in ("from", "to", "action"):
            if key not in item:
                raise PolicyError(origin, f"{where}: missing key {key!r}")
        action = item["action"]
        if action not in ACTIONS:
            raise PolicyError(origin, f"{where}: unknown action {action!r}; expected allow or deny")
        severity = item.get("severity", "error")
        if severity not in SEVERITIES:
            raise PolicyError(origin, f"{where}: unknown severity {severity!r}; expected one of "
                                      f"{', '.join(SEVERITIES)}")
        raw_port = item.get("port", "any")
        port_role = _port_role(raw_port)
        rule = Rule(
            source=resolve_service(item["from"], aliases, origin, f"{where}.from"),
            target=resolve_service(item["to"], aliases, origin, f"{where}.to"),
            port=None if port_role else _port(raw_port, origin, f"{where}.port", allow_any=True),
            action=action,
            protocol=str(item.get("protocol", "tcp")),
            severity=severity,
            port_role=port_role,
        )
        key3 = (rule.source, rule.target, rule.port_role or rule.port)
        if key3 in seen:
            raise PolicyError(origin,
                              f"{where}: duplicates rules[{seen[key3]}] ({rule.describe()})")
        seen[key3] = i
        rules.append(rule)
    return tuple(rules)


def _parse_external(
    origin: str, data: object, aliases: Mapping[str, str]
) -> dict[str, tuple[ExternalPort, ...]]:
    if not isinstance(data, dict):
        raise PolicyError(origin, "external: expected a mapping environment -> list of ports")
    out: dict[str, tuple[ExternalPort, ...]] = {}
    for env, items in data.items():
        if not isinstance(env, str) or not _ENV_RE.match(env):
            raise PolicyError(origin, f"external: bad environment name {env!r}")
        if not isinstance(items, list):
            raise PolicyError(origin, f"external.{env}: expected a list")
        ports: list[ExternalPort] = []
        for i, item in enumerate(items):
            where = f"external.{env}[{i}]"
            if not isinstance(item, dict):
                raise PolicyError(origin,
                                  f"{where}: expected a mapping with service, port, host_port")
            _no_unknown_keys(origin, where, item, _EXTERNAL_KEYS)
            if "service" not in item or "port" not in item:
                raise PolicyError(origin, f"{where}: needs service and port")
            service = resolve_service(item["service"], aliases, origin, f"{where}.service")
            port_role = _port_role(item["port"])
            if port_role is not None:
                hport = _port(item["host_port"], origin, f"{where}.host_port",
                              allow_any=False) if "host_port" in item else 0
                ports.append(ExternalPort(service, 0, hport or 0, port_role))
                continue
            cport = _port(item["port"], origin, f"{where}.port", allow_any=False)
            hport = _port(item.get("host_port", cport), origin, f"{where}.host_port",
                          allow_any=False)
            assert cport is not None and hport is not None  # allow_any=False never gives None
            ports.append(ExternalPort(service, cport, hport))
        out[env] = tuple(ports)
    return out


# ---------------------------------------------------------------- binding to one stack


def _holders(name: str, roles: Mapping[str, str], what: str, problems: list[str]) -> list[str]:
    role = role_of_name(name)
    if role is not None:
        found = sorted(s for s, r in roles.items() if r == role)
        if not found:
            problems.append(f"{what} names role {role!r}, which no service of the stack holds")
        return found
    service = _plain(name)
    if service not in roles:
        problems.append(f"{what} names service {service!r}, which the stack lacks "
                        f"(services: {', '.join(sorted(roles)) or 'none'})")
        return []
    return [service]


def _bound_port(port_role: str, service: str, roles: Mapping[str, str],
                ports: Mapping[str, int | None]) -> int | None:
    """``service``'s port when it holds ``port_role``, else the first holder's."""
    if roles.get(service) == port_role and ports.get(service) is not None:
        return ports[service]
    return next((ports[s] for s in sorted(roles) if roles[s] == port_role
                 and ports.get(s) is not None), None)


def _bind(policy: Policy, roles: Mapping[str, str], ports: Mapping[str, int | None]
          ) -> tuple[Policy, list[str]]:
    problems: list[str] = []
    assigned = dict(roles)
    rules: list[Rule] = []
    seen: set[tuple[str, str, int | None]] = set()
    for rule in policy.rules:
        what = f"rule {rule.describe()}"
        sources = _holders(rule.source, assigned, what, problems)
        targets = _holders(rule.target, assigned, what, problems)
        for src in sources:
            for dst in targets:
                if src == dst:
                    continue
                port = rule.port
                if rule.port_role is not None:
                    port = _bound_port(rule.port_role, dst, assigned, ports)
                    if port is None:
                        problems.append(f"{what}: the {rule.port_role}'s port is unknown; "
                                        f"{src} -> {dst} judged on any port")
                key = (src, dst, port)
                if key not in seen:
                    seen.add(key)
                    rules.append(Rule(src, dst, port, rule.action, rule.protocol, rule.severity))
    external: dict[str, tuple[ExternalPort, ...]] = {}
    for env, entries in policy.external.items():
        out: list[ExternalPort] = []
        for e in entries:
            what = f"external.{env} entry {_plain(e.service)}"
            for svc in _holders(e.service, assigned, what, problems):
                port = e.container_port if e.port_role is None else _bound_port(
                    e.port_role, svc, assigned, ports)
                if port is None:
                    problems.append(f"{what}: the {e.port_role}'s port is unknown")
                    continue
                out.append(ExternalPort(svc, port, e.host_port or port))
        external[env] = tuple(out)
    bound = Policy(tuple(rules), external, policy.default, policy.origin, policy.aliases,
                   policy.roles, policy.conventions, bound=True)
    return bound, list(dict.fromkeys(problems))


# ---------------------------------------------------------------- comparison


def verdict(expected: str, observed: str) -> str:
    """ok, violation, blocked, refused_not_dropped or inconclusive for one probed path."""
    if observed == "error":
        return "inconclusive"
    if expected == "allow":
        return "ok" if observed == "open" else "blocked"
    if observed == "open":
        return "violation"
    if observed == "refused":
        return "refused_not_dropped"
    return "ok"


def row_severity(verdict_: str, rule: Rule | None) -> str:
    """Severity of a judged path: the rule's for violation/blocked, one lower when refused."""
    base = rule.severity if rule is not None else "error"
    if verdict_ in ("violation", "blocked"):
        return base
    if verdict_ == "refused_not_dropped":
        return "warning" if base == "error" else "info"
    if verdict_ == "inconclusive":
        return "info"
    return ""


_MEANING = {
    "violation": "denied path is open: isolation missing",
    "refused_not_dropped": "denied path reached the host (refused, not dropped): same network",
    "blocked": "allowed path is not open",
    "inconclusive": "the probe failed; nothing can be concluded",
}


def evidence(row: Mapping[str, Any], rule: Rule | None, expected: str, verdict_: str) -> str:
    """One line: who probed what, the outcome, its time and method, and the rule applied."""
    ip = row.get("target_ip") or ""
    where = f"{row.get('target_host') or row.get('target_service')}"
    where += f" ({ip}:{row.get('target_port')})" if ip else f":{row.get('target_port')}"
    ms = row.get("connect_ms")
    took = f" in {float(ms):.2f} ms" if ms is not None and not pd.isna(ms) else ""
    err = f" [{row.get('error_type')}]" if row.get("error_type") else ""
    applied = rule.describe() if rule is not None else f"default {expected}"
    text = (
        f"{row.get('source')} -> {where}: {row.get('outcome')}{took}{err} "
        f"via {row.get('method') or '?'}; policy {applied}"
    )
    meaning = _MEANING.get(verdict_)
    if meaning is None and expected == "deny":
        meaning = "isolated (dropped or not resolvable)"
    return f"{text}; {meaning}" if meaning else text


def declared_verdict(expected: str, observed: str) -> str:
    """Verdict against the declared networks: sharing one means the target host is reached
    (open or refused); not sharing one means it is not (timeout or unresolvable).

    >>> declared_verdict("allow", "refused"), declared_verdict("deny", "refused")
    ('ok', 'violation')
    """
    if observed == "error":
        return "inconclusive"
    reached = observed in ("open", "refused")
    if expected == "allow":
        return "ok" if reached else "blocked"
    return "violation" if reached else "ok"


def _declared_evidence(row: Mapping[str, Any], nets: Mapping[str, set[str]], expected: str,
                       verdict_: str) -> str:
    src, dst = str(row.get("source_service")), str(row.get("target_service"))
    shared = sorted(nets.get(src, set()) & nets.get(dst, set()))
    said = (f"both on {', '.join(shared)}" if shared else
            f"{src} on {', '.join(sorted(nets.get(src, set()))) or 'nothing'}, "
            f"{dst} on {', '.join(sorted(nets.get(dst, set()))) or 'nothing'}")
    text = (f"{row.get('source')} -> {row.get('target_host') or dst}:{row.get('target_port')}: "
            f"{row.get('outcome')} via {row.get('method') or '?'}; declared networks: {said}, "
            f"so {expected}")
    meaning = {"violation": "reachable without a shared declared network",
               "blocked": "not reachable although a declared network is shared"}.get(verdict_)
    return f"{text}; {meaning}" if meaning else text


def compare(policy: Policy, reachability: pd.DataFrame,
            declared: Mapping[str, set[str]] | None = None) -> pd.DataFrame:
    """The ``violations`` frame: every probed path the policy judges, with its verdict.

    ``policy`` should be bound to the stack (:meth:`Policy.bind`). Where it says nothing,
    ``declared`` (service -> its declared networks) is the expectation: two services reach
    each other exactly when they share a network (``basis`` ``declared``, severity warning).
    """
    rows: list[dict[str, Any]] = []
    nets = declared or {}
    for rec in reachability.to_dict("records"):
        src, dst = str(rec.get("source_service") or ""), str(rec.get("target_service") or "")
        port = rec.get("target_port")
        if not src or not dst or src == dst or port is None or pd.isna(port):
            continue
        port = int(port)
        observed = str(rec.get("outcome") or "error")
        expected = policy.expected(src, dst, port)
        if expected is None:
            if src not in nets or dst not in nets:
                continue
            expected = "allow" if nets[src] & nets[dst] else "deny"
            v = declared_verdict(expected, observed)
            rows.append({"source_service": src, "target_service": dst, "target_port": port,
                         "expected": expected, "observed": observed, "verdict": v,
                         "severity": {"ok": "", "inconclusive": "info"}.get(v, "warning"),
                         "evidence": _declared_evidence(rec, nets, expected, v),
                         "basis": "declared"})
            continue
        v = verdict(expected, observed)
        rule = policy.rule_for(src, dst, port)
        rows.append(
            {
                "source_service": src,
                "target_service": dst,
                "target_port": port,
                "expected": expected,
                "observed": observed,
                "verdict": v,
                "severity": row_severity(v, rule),
                "evidence": evidence(rec, rule, expected, v),
                "basis": "policy" if rule is not None else "default",
            }
        )
    return schemas.to_frame("violations", rows)
