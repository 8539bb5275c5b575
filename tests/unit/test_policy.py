"""The access policy: the seed's matrix as default, YAML loading with typed errors, comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

from revivadiag import schemas
from revivadiag.analyze.policy import (
    Policy,
    compare,
    load_policy,
    parse_policy,
    row_severity,
    verdict,
)
from revivadiag.errors import PolicyError

SEED_ROLES = {"frontend": "proxy", "backend": "backend", "database": "database",
              "redis": "cache"}
SEED_PORTS = {"frontend": 3010, "backend": 3011, "database": 5432, "redis": 6379}


@pytest.fixture(scope="module")
def seed() -> Policy:
    """The default policy (in roles) bound to the seed's four services."""
    bound, problems = load_policy().bind(SEED_ROLES, SEED_PORTS)
    assert problems == []
    return bound


@pytest.mark.parametrize(
    ("source", "target", "port", "expected"),
    [
        ("frontend", "backend", 3011, "allow"),
        ("frontend", "backend", 8080, None),  # only 3011 is stated
        ("frontend", "database", 5432, "deny"),
        ("frontend", "database", 9999, "deny"),  # "any" port
        ("frontend", "redis", 6379, "deny"),
        ("backend", "database", 5432, "allow"),
        ("backend", "redis", 6379, "allow"),
        ("database", "redis", 6379, "deny"),
        ("backend", "frontend", 3010, None),  # a "-" cell
        ("redis", "database", 5432, None),
    ],
)
def test_default_policy_is_the_seed_matrix(
    seed: Policy, source: str, target: str, port: int, expected: str | None
) -> None:
    """Each cell of the seed's access control matrix."""
    assert seed.expected(source, target, port) == expected


def test_default_external_ports_per_environment(seed: Policy) -> None:
    """Development publishes the four seed ports, production the frontend's 3010 only."""
    dev = {(p.service, p.container_port) for p in seed.allowed_external("development")}
    assert dev == {("frontend", 3010), ("backend", 3011), ("database", 5432), ("redis", 6379)}
    prod = [(p.service, p.container_port) for p in seed.allowed_external("production")]
    assert prod == [("frontend", 3010)]


def test_unknown_environment_is_a_policy_error(seed: Policy) -> None:
    """Asking for an environment the policy does not describe names the known ones."""
    with pytest.raises(PolicyError, match=r"staging.*development, production"):
        seed.allowed_external("staging")


def test_services_alias_map_renames_policy_names() -> None:
    """`services:` maps the policy's names to compose service names (case-insensitively)."""
    policy = parse_policy("""
services: {Frontend: web, Database: pg}
rules:
  - {from: frontend, to: DATABASE, action: deny}
  - {from: Frontend, to: Api, port: 8000, action: allow}
""")
    assert policy.expected("web", "pg", 5432) == "deny"
    assert policy.expected("web", "api", 8000) == "allow"
    assert policy.services == ["api", "pg", "web"]


def test_exact_port_rule_beats_any_port_rule() -> None:
    """An exact port is more specific than `any`, whatever the order."""
    policy = parse_policy("""
rules:
  - {from: a, to: b, port: any, action: deny}
  - {from: a, to: b, port: 80, action: allow}
""")
    assert (policy.expected("a", "b", 80), policy.expected("a", "b", 81)) == ("allow", "deny")


@pytest.mark.parametrize(("default", "expected"), [("ignore", None), ("deny", "deny"),
                                                   ("allow", "allow")])
def test_default_action_for_unstated_paths(default: str, expected: str | None) -> None:
    """`default` decides paths without a rule."""
    assert parse_policy(f"default: {default}\n").expected("x", "y", 1) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("rules: [\n  {from: a, to: b, action: allow\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping at the top level"),
        ("rulez: []\n", "unknown key(s) rulez"),
        ("version: 2\n", "unsupported version 2"),
        ("default: maybe\n", "default: unknown value 'maybe'"),
        ("rules: {a: b}\n", "rules: expected a list"),
        ("rules: [{from: a, to: b, action: permit}]\n", "rules[0]: unknown action 'permit'"),
        ("rules: [{from: a, to: b, action: allow, port: 70000}]\n",
         "rules[0].port: bad port 70000"),
        ("rules: [{from: a, to: b, action: allow, port: '80'}]\n", "bad port '80'"),
        ("roles: {frontend: web}\n", "roles: unknown role 'frontend'"),
        ("roles: {backend: [1]}\n", "roles.backend: expected a service name"),
        ("conventions: {naming: prefix}\n", "conventions.naming: expected a pattern"),
        ("conventions: {colour: red}\n", "conventions: unknown key(s) colour"),
        ("rules: [{from: a, to: b, action: allow, port: true}]\n", "bad port True"),
        ("rules: [{from: a, action: allow}]\n", "rules[0]: missing key 'to'"),
        ("rules: [{from: a, to: b, action: deny, colour: red}]\n",
         "rules[0]: unknown key(s) colour"),
        ("rules: [{from: a, to: b, action: deny, severity: fatal}]\n", "unknown severity 'fatal'"),
        ("rules: [{from: '', to: b, action: deny}]\n", "rules[0].from: expected a service name"),
        ("rules:\n - {from: a, to: b, action: deny}\n - {from: A, to: b, action: allow}\n",
         "rules[1]: duplicates rules[0]"),
        ("services: [a]\n", "services: expected a mapping"),
        ("external: {development: [{service: a}]}\n", "external.development[0]: needs service"),
        ("external: {development: [{service: a, port: 0}]}\n", "external.development[0].port"),
        ("external: {Dev!: []}\n", "bad environment name 'Dev!'"),
        ("external: {development: [{service: a, port: 1, extra: 2}]}\n", "unknown key(s) extra"),
    ],
)
def test_malformed_policy_raises_policy_error_naming_the_problem(text: str, needle: str) -> None:
    """Every malformed file gives a PolicyError whose message names the offending part."""
    with pytest.raises(PolicyError) as info:
        parse_policy(text, origin="my.yml")
    assert needle in str(info.value)
    assert info.value.path == "my.yml"


def test_load_policy_from_a_file_and_a_missing_file(tmp_path: Path) -> None:
    """A file on disk loads; a missing one is a PolicyError naming the path."""
    good = tmp_path / "p.yml"
    good.write_text("rules: [{from: a, to: b, port: 1, action: allow}]\n")
    assert load_policy(good).expected("a", "b", 1) == "allow"
    with pytest.raises(PolicyError, match=r"nope\.yml: cannot read"):
        load_policy(tmp_path / "nope.yml")


@pytest.mark.parametrize(
    ("expected", "observed", "result"),
    [
        ("deny", "open", "violation"),
        ("deny", "refused", "refused_not_dropped"),
        ("deny", "timeout", "ok"),
        ("deny", "unresolvable", "ok"),
        ("deny", "error", "inconclusive"),
        ("allow", "open", "ok"),
        ("allow", "refused", "blocked"),
        ("allow", "timeout", "blocked"),
        ("allow", "unresolvable", "blocked"),
        ("allow", "error", "inconclusive"),
    ],
)
def test_verdict_table(expected: str, observed: str, result: str) -> None:
    """Refused (reached the host) is told apart from dropped (timeout/unresolvable)."""
    assert verdict(expected, observed) == result


def _probe(source: str, target: str, port: int, outcome: str, **kw: object) -> dict[str, object]:
    return {"source": f"p_{source}", "source_service": source, "target": f"p_{target}",
            "target_service": target, "target_host": target, "target_ip": kw.get("ip", ""),
            "target_port": port, "outcome": outcome, "connect_ms": kw.get("ms"),
            "attempts": 1, "error_type": kw.get("error_type", ""), "error": "",
            "method": "setns"}


def test_compare_builds_the_violations_frame(seed: Policy) -> None:
    """Judged paths only, with verdict, severity and evidence per row."""
    reach = schemas.to_frame("reachability", [
        _probe("frontend", "database", 5432, "open", ip="10.0.0.3", ms=0.21),
        _probe("frontend", "redis", 6379, "refused", ip="10.0.0.4", ms=0.1),
        _probe("frontend", "backend", 3011, "timeout", ms=500.0, error_type="TIMEOUT"),
        _probe("backend", "database", 5432, "open", ip="10.0.1.3", ms=0.2),
        _probe("database", "redis", 6379, "open", ip="10.0.1.4", ms=0.2),
        _probe("backend", "frontend", 3010, "open"),  # not judged
        _probe("backend", "backend", 3011, "open"),  # self
    ])
    v = compare(seed, reach)
    schemas.validate("violations", v)
    got = [tuple(r) for r in v[["source_service", "target_service", "verdict", "severity"]]
           .itertuples(index=False)]
    assert got == [
        ("frontend", "database", "violation", "error"),
        ("frontend", "redis", "refused_not_dropped", "warning"),
        ("frontend", "backend", "blocked", "error"),
        ("backend", "database", "ok", ""),
        ("database", "redis", "violation", "error"),
    ]
    first = v.iloc[0]["evidence"]
    assert "p_frontend -> database (10.0.0.3:5432): open in 0.21 ms via setns" in first
    assert "policy frontend -> database:any deny" in first
    assert "[TIMEOUT]" in v.iloc[2]["evidence"]


def test_row_severity_lowers_refused() -> None:
    """Refused-not-dropped is one step below the rule; ok rows carry no severity."""
    assert (row_severity("refused_not_dropped", None), row_severity("ok", None),
            row_severity("inconclusive", None)) == ("warning", "", "info")


def test_compare_of_an_empty_frame_is_an_empty_valid_frame(seed: Policy) -> None:
    """No probes, no rows, right columns."""
    v = compare(seed, schemas.empty_frame("reachability"))
    schemas.validate("violations", v)
    assert v.empty


# ---------------------------------------------------------------- roles and declared networks


STACK = {"edge": "proxy", "api": "backend", "pg": "database", "kv": "cache", "jobs": "worker"}
STACK_PORTS = {"edge": 80, "api": 8000, "pg": 5432, "kv": 6379}


def test_role_rules_apply_to_whatever_services_hold_the_roles() -> None:
    """The seed's matrix on a stack named otherwise, with the backend's learned port."""
    bound, problems = load_policy().bind(STACK, STACK_PORTS)
    assert problems == []
    assert bound.expected("edge", "api", 8000) == "allow"
    assert bound.expected("edge", "api", 3011) is None
    assert (bound.expected("edge", "pg", 1), bound.expected("pg", "kv", 6379)) == ("deny", "deny")
    assert bound.expected("api", "kv", 6379) == "allow"
    assert [(p.service, p.container_port) for p in bound.allowed_external("production")] == [
        ("edge", 80)]


def test_a_role_held_by_two_services_expands_to_both() -> None:
    """Two databases: the proxy is denied both, the backend allowed both."""
    bound, _ = load_policy().bind({**STACK, "pg2": "database"}, {**STACK_PORTS, "pg2": 5433})
    assert bound.expected("edge", "pg2", 5433) == "deny"
    assert bound.expected("api", "pg2", 5433) == "allow"


def test_names_the_stack_lacks_are_reported() -> None:
    """A role nobody holds and a service the stack lacks are problems, never silence."""
    policy = parse_policy("""
rules:
  - {from: backend, to: cache, port: cache, action: allow}
  - {from: web, to: api, port: 8000, action: allow}
""", origin="mine.yml")
    bound, problems = policy.bind({"api": "backend", "db": "database"}, {"api": 8000})
    assert bound.rules == ()
    assert any("role 'cache'" in p and "no service" in p for p in problems)
    assert any("service 'web'" in p and "lacks" in p for p in problems)


def test_service_names_and_prefixes_keep_working() -> None:
    """A policy in service names binds to those services; service:NAME beats the role word."""
    policy = parse_policy("""
services: {Frontend: web}
rules:
  - {from: Frontend, to: api, port: 8000, action: allow}
  - {from: service:backend, to: db, port: any, action: deny}
""")
    roles = {"web": "proxy", "api": "backend", "backend": "other", "db": "database"}
    bound, problems = policy.bind(roles, {})
    assert problems == []
    assert bound.expected("web", "api", 8000) == "allow"
    assert bound.expected("backend", "db", 5432) == "deny"
    assert bound.expected("api", "db", 5432) is None


def test_policy_roles_section() -> None:
    """roles: assigns services to roles (read by the role inference)."""
    policy = parse_policy("roles: {backend: api, cache: [a, b]}\n")
    assert dict(policy.roles) == {"backend": ("api",), "cache": ("a", "b")}


@pytest.mark.parametrize(
    ("src_nets", "outcome", "verdict_", "severity"),
    [({"front"}, "open", "ok", ""), ({"front"}, "refused", "ok", ""),
     ({"front"}, "timeout", "blocked", "warning"),
     ({"other"}, "open", "violation", "warning"), ({"other"}, "timeout", "ok", ""),
     ({"other"}, "unresolvable", "ok", ""), ({"other"}, "error", "inconclusive", "info")],
)
def test_declared_networks_are_the_expectation_where_the_policy_is_silent(
    src_nets: set[str], outcome: str, verdict_: str, severity: str
) -> None:
    """web -> api: no rule; sharing a declared network means reachable, else not."""
    bound, _ = load_policy().bind({"web": "other", "api": "backend"}, {"api": 8000})
    reach = schemas.to_frame("reachability", [_probe("web", "api", 8000, outcome)])
    v = compare(bound, reach, {"web": src_nets, "api": {"front", "back"}})
    assert v[["expected", "verdict", "severity", "basis"]].values.tolist() == [
        ["allow" if src_nets == {"front"} else "deny", verdict_, severity, "declared"]]
    assert "declared networks" in v.iloc[0]["evidence"]


def test_a_rule_beats_the_declared_networks() -> None:
    """Where the policy speaks, the declared networks do not."""
    bound, _ = load_policy().bind(STACK, STACK_PORTS)
    reach = schemas.to_frame("reachability", [_probe("edge", "pg", 5432, "open")])
    v = compare(bound, reach, {"edge": {"n"}, "pg": {"n"}})
    assert v[["verdict", "basis"]].values.tolist() == [["violation", "policy"]]
