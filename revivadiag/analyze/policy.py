"""The expected access policy and its comparison with observed reachability.

The default policy is the seed's access control matrix, shipped as
``revivadiag/analyze/default_policy.yml``; :func:`load_policy` reads that file or your own
and raises :class:`~revivadiag.errors.PolicyError` naming the problem when it is malformed.

>>> policy = load_policy()
>>> policy.expected("frontend", "database", 5432), policy.expected("frontend", "backend", 3011)
('deny', 'allow')
>>> policy.expected("backend", "frontend", 3010) is None      # a "-" cell: not judged
True
>>> [p.host_port for p in policy.allowed_external("production")]
[3010]

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

from revivadiag import schemas
from revivadiag.errors import PolicyError

ACTIONS = ("allow", "deny")
DEFAULTS = ("ignore", "allow", "deny")
ANY_PORT = ("any", "*")
DEFAULT_POLICY_NAME = "default_policy.yml"

_TOP_KEYS = {"version", "description", "services", "default", "rules", "external"}
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

    def describe(self) -> str:
        """``frontend -> database:any deny``."""
        port = "any" if self.port is None else str(self.port)
        return f"{self.source} -> {self.target}:{port} {self.action}"


@dataclass(frozen=True)
class ExternalPort:
    """A port an environment may publish: the service's container port and its host port."""

    service: str
    container_port: int
    host_port: int


@dataclass(frozen=True)
class Policy:
    """Expected internal paths and allowed published ports, in compose service names."""

    rules: tuple[Rule, ...]
    external: Mapping[str, tuple[ExternalPort, ...]]
    default: str = "ignore"
    origin: str = "<default>"
    aliases: Mapping[str, str] = field(default_factory=dict)

    def rule_for(self, source: str, target: str, port: int) -> Rule | None:
        """The rule that judges ``source -> target:port``: an exact port beats ``any``."""
        exact = [r for r in self.rules if (r.source, r.target, r.port) == (source, target, port)]
        if exact:
            return exact[0]
        wild = [r for r in self.rules if (r.source, r.target, r.port) == (source, target, None)]
        return wild[0] if wild else None

    def expected(self, source: str, target: str, port: int) -> str | None:
        """``allow``, ``deny``, or None when the policy says nothing about that path."""
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
        """Every compose service the policy names."""
        names = {r.source for r in self.rules} | {r.target for r in self.rules}
        names |= {p.service for ports in self.external.values() for p in ports}
        return sorted(names)


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
        data = yaml.safe_load(text)
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
    return Policy(rules, external, default=default, origin=origin, aliases=aliases)


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
    """The compose service for ``name``: the alias map (case-insensitive), else lowercase."""
    if not isinstance(name, str) or not name.strip():
        raise PolicyError(origin, f"{where}: expected a service name, got {name!r}")
    folded = {k.casefold(): v for k, v in aliases.items()}
    return folded.get(name.strip().casefold(), name.strip().lower())


def _port(value: object, origin: str, where: str, *, allow_any: bool) -> int | None:
    if allow_any and isinstance(value, str) and value.strip().lower() in ANY_PORT:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        hint = "an integer 1..65535" + (" or 'any'" if allow_any else "")
        raise PolicyError(origin, f"{where}: bad port {value!r}; expected {hint}")
    return value


def _parse_rules(origin: str, data: object, aliases: Mapping[str, str]) -> tuple[Rule, ...]:
    if not isinstance(data, list):
        raise PolicyError(origin, "rules: expected a list")
    rules: list[Rule] = []
    seen: dict[tuple[str, str, int | None], int] = {}
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
        rule = Rule(
            source=resolve_service(item["from"], aliases, origin, f"{where}.from"),
            target=resolve_service(item["to"], aliases, origin, f"{where}.to"),
            port=_port(item.get("port", "any"), origin, f"{where}.port", allow_any=True),
            action=action,
            protocol=str(item.get("protocol", "tcp")),
            severity=severity,
        )
        key3 = (rule.source, rule.target, rule.port)
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
            cport = _port(item["port"], origin, f"{where}.port", allow_any=False)
            hport = _port(item.get("host_port", cport), origin, f"{where}.host_port",
                          allow_any=False)
            assert cport is not None and hport is not None  # allow_any=False never gives None
            service = resolve_service(item["service"], aliases, origin, f"{where}.service")
            ports.append(ExternalPort(service, cport, hport))
        out[env] = tuple(ports)
    return out


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


def compare(policy: Policy, reachability: pd.DataFrame) -> pd.DataFrame:
    """The ``violations`` frame: every probed path the policy judges, with its verdict."""
    rows: list[dict[str, Any]] = []
    for rec in reachability.to_dict("records"):
        src, dst = str(rec.get("source_service") or ""), str(rec.get("target_service") or "")
        port = rec.get("target_port")
        if not src or not dst or src == dst or port is None or pd.isna(port):
            continue
        port = int(port)
        expected = policy.expected(src, dst, port)
        if expected is None:
            continue
        observed = str(rec.get("outcome") or "error")
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
            }
        )
    return schemas.to_frame("violations", rows)
