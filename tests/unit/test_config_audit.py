"""Config audit checks over hand-built frames and recorded live facts (pure judgement)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from revivadiag import schemas
from revivadiag.analyze import config_audit as ca
from revivadiag.analyze.checks import CHECKS
from revivadiag.analyze.policy import load_policy
from revivadiag.collect.live_facts import HttpResult, LiveFacts
from revivadiag.errors import ParameterError

SEED_ROLES = {"frontend": "proxy", "backend": "backend", "database": "database",
              "redis": "cache"}
SEED_SERVICE_PORTS = {"frontend": 3010, "backend": 3011, "database": 5432, "redis": 6379}
POLICY, _ = load_policy().bind(SEED_ROLES, SEED_SERVICE_PORTS)


def _env(*rows: tuple[str, str, str, str]) -> pd.DataFrame:
    return schemas.to_frame("env", [
        {"container": c, "service": s, "key": k, "value": v, "is_sensitive": False}
        for c, s, k, v in rows
    ])


def _status(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(r["subject"], r["status"]) for r in rows]


@pytest.mark.parametrize(
    ("value", "status", "needle"),
    [
        ("http://localhost:3011", "fail", "browser's own machine"),
        ("ws://127.0.0.1:3011/ws", "fail", "port 3011 is a container port"),
        ("http://p_new_backend:3011", "fail", "container/service name"),
        ("", "pass", "relative URLs"),
        ("https://api.revivatech.co.uk", "pass", "https://api.revivatech.co.uk"),
        ("http://localhost:3010", "fail", "browser's own machine"),
    ],
)
def test_client_env_urls(value: str, status: str, needle: str) -> None:
    """NEXT_PUBLIC_* URLs must not name localhost, container names or container ports."""
    env = _env(("p_f", "frontend", "NEXT_PUBLIC_API_URL", value), ("p_f", "frontend", "PATH", "/x"))
    [row] = ca.check_client_env(env, internal_names=["p_new_backend", "backend"],
                                internal_ports={3011, 5432, 5435})
    assert (row["status"], row["subject"]) == (status, "p_f NEXT_PUBLIC_API_URL")
    assert needle in row["evidence"]


def test_no_client_variables_is_a_pass() -> None:
    """Without client-visible URL variables the browser uses relative URLs."""
    assert _status(ca.check_client_env(_env(), [])) == [("environment", "pass")]


def _page(body: str, scripts: dict[str, str] | None = None) -> LiveFacts:
    return LiveFacts("http://127.0.0.1:3010", page=HttpResult(200, {}, body),
                     scripts=scripts or {})


LAB_PAGE = """<p>API base URL: <code>{shown}</code></p>
<!-- previously http://localhost:3011 -->
<script>
  // current: NEXT_PUBLIC_API_URL is http://localhost:3011 (absolute, host-specific)
  const API_URL = "{url}";
  fetch(API_URL + "/api/health");
  /* ws: ws://localhost:3011/ws */
</script><svg xmlns="http://www.w3.org/2000/svg"></svg>"""


@pytest.mark.parametrize(
    ("url", "status"), [("http://localhost:3011", "fail"), ("", "pass")],
)
def test_page_urls_ignore_comments_text_and_namespaces(url: str, status: str) -> None:
    """Only string literals of code count: comments, shown text and xmlns do not."""
    live = _page(LAB_PAGE.format(url=url, shown=url or "(relative)"))
    rows = ca.check_page(live, internal_names=[])
    assert [r["status"] for r in rows] == [status]


def test_page_scripts_are_scanned_and_duplicates_folded() -> None:
    """A same-origin script's URLs count; the same URL twice is one row."""
    live = _page("<script src='/app.js'></script>",
                 {"/app.js": 'a("ws://localhost:3011/ws"); b("ws://localhost:3011/ws")'})
    rows = ca.check_page(live, [])
    assert _status(rows) == [("http://127.0.0.1:3010/app.js", "fail")]


def test_page_not_served_and_live_off() -> None:
    """A page that is not served fails; without live checks the check is skipped."""
    down = LiveFacts("http://127.0.0.1:3010", page=HttpResult(error="ConnectError: refused"))
    assert ca.check_page(down, [])[0]["status"] == "fail"
    assert ca.check_page(None, [])[0]["status"] == "skip"
    api_only = LiveFacts("http://127.0.0.1:3010", page=HttpResult(404, {}, "Not Found"))
    rows = ca.check_page(api_only, [])
    assert [r["status"] for r in rows] == ["skip"] and "HTTP 404" in rows[0]["evidence"]


def test_mixed_content_only_in_production() -> None:
    """http:// and ws:// served to the https site fail in production; development skips."""
    env = _env(("p_f", "frontend", "NEXT_PUBLIC_WEBSOCKET_URL", "ws://localhost:3011"),
               ("p_f", "frontend", "NEXT_PUBLIC_API_URL", "https://api.example.test"))
    prod = ca.check_mixed_content("production", env, _page('f("http://x.test/a")'))
    assert _status(prod) == [("p_f NEXT_PUBLIC_WEBSOCKET_URL", "fail"), ("page /", "fail")]
    assert ca.check_mixed_content("development", env, None)[0]["status"] == "skip"
    assert ca.check_mixed_content("production", _env(), None)[0]["status"] == "pass"


def _endpoints() -> pd.DataFrame:
    return schemas.to_frame("endpoints", [
        {"container": "p_backend", "service": "backend", "network": "back", "ipv4": "10.0.0.2",
         "aliases": ["backend"], "dns_names": ["p_backend", "backend"]},
        {"container": "p_database", "service": "database", "network": "back",
         "ipv4": "10.0.0.3", "aliases": ["database", "db"], "dns_names": ["p_database"]},
        {"container": "p_frontend", "service": "frontend", "network": "front",
         "ipv4": "10.1.0.2", "aliases": [], "dns_names": ["p_frontend"]},
    ])


def test_internal_dns_from_the_dns_frame_then_the_endpoints() -> None:
    """Queried names use the dns frame; others the names Docker answers on shared networks."""
    env = _env(("p_backend", "backend", "DATABASE_INTERNAL_HOST", "p_database"),
               ("p_backend", "backend", "REDIS_INTERNAL_URL", "redis://:***@cache:6379/0"),
               ("p_backend", "backend", "DATABASE_URL", "postgresql://u:***@db:5432/x"),
               ("p_frontend", "frontend", "BACKEND_INTERNAL_URL", "http://p_backend:3011"),
               ("p_frontend", "frontend", "BACKEND_HOST", "localhost"),
               ("p_backend", "backend", "DATABASE_PASSWORD", "***"),
               ("p_backend", "backend", "APP_ENV", "development"))
    dns = schemas.to_frame("dns", [
        {"source": "p_backend", "query": "p_database", "rcode": "NOERROR",
         "answers": ["10.0.0.3"], "latency_ms": 0.5},
        {"source": "p_frontend", "query": "p_backend", "rcode": "NXDOMAIN", "latency_ms": 0.4},
    ])
    rows = ca.check_internal_dns(env, dns, _endpoints())
    assert _status(rows) == [
        ("p_backend DATABASE_INTERNAL_HOST", "pass"),
        ("p_backend REDIS_INTERNAL_URL", "fail"),  # no 'cache' on its networks
        ("p_backend DATABASE_URL", "pass"),  # 'db' is an alias on 'back'
        ("p_frontend BACKEND_INTERNAL_URL", "fail"),  # NXDOMAIN from the dns frame
        ("p_frontend BACKEND_HOST", "fail"),  # localhost is the container itself
    ]
    assert "10.0.0.3" in rows[0]["evidence"] and "NXDOMAIN" in rows[3]["evidence"]


@pytest.mark.parametrize(
    ("name", "status"),
    [("rev_backend", "pass"), ("rev_new_backend", "fail"), ("rev_backend_1", "pass"),
     ("rev-backend-1", "pass"), ("backend", "fail")],
)
def test_container_naming(name: str, status: str) -> None:
    """Where a convention applies: <prefix>_<service>; Compose's default names pass."""
    containers = schemas.to_frame("containers", [{"name": name, "service": "backend"}])
    assert ca.check_naming(containers, "rev", "{project}_{service}")[0]["status"] == status


@pytest.mark.parametrize("name", ["shop_api_1", "shop-api-1", "api", "my-api"])
def test_no_naming_finding_on_a_stack_that_is_not_the_seed(name: str) -> None:
    """A stack that is not the seed's, under the default policy: names are not judged."""
    containers = schemas.to_frame("containers", [{"name": name, "service": "api"},
                                                 {"name": "shop-db-1", "service": "db"}])
    pattern = ca.naming_convention(containers["service"], load_policy())
    rows = ca.check_naming(containers, "shop", pattern)
    assert pattern is None
    assert [r["status"] for r in rows] == ["skip"]


def test_naming_convention_asked_by_a_policy() -> None:
    """conventions.naming applies the pattern to any stack; the seed's stack gets the seed's."""
    from revivadiag.analyze.policy import parse_policy

    asked = parse_policy("conventions: {naming: 'app-{service}'}\n")
    assert ca.naming_convention(["api"], asked) == "app-{service}"
    assert ca.naming_convention(SEED_ROLES, load_policy()) == "{project}_{service}"
    containers = schemas.to_frame("containers", [{"name": "app-api", "service": "api"},
                                                 {"name": "shop-web", "service": "web"}])
    assert _status(ca.check_naming(containers, "shop", "app-{service}")) == [
        ("app-api", "pass"), ("shop-web", "fail")]


def _ports(*rows: tuple[str, int, int]) -> pd.DataFrame:
    return schemas.to_frame("ports", [
        {"container": f"p_{s}", "service": s, "container_port": cp, "protocol": "tcp",
         "host_ip": "127.0.0.1", "host_port": hp} for s, cp, hp in rows
    ])


SEED_PORTS = (("frontend", 3010, 3010), ("backend", 3011, 3011), ("database", 5432, 5435),
              ("redis", 6379, 6383))


@pytest.mark.parametrize(
    ("environment", "expected"),
    [("development", ["pass", "pass", "pass", "pass"]),
     ("production", ["pass", "fail", "fail", "fail"])],
)
def test_published_ports_per_environment(environment: str, expected: list[str]) -> None:
    """Development allows the four seed ports; production only the frontend's."""
    rows = ca.check_ports(_ports(*SEED_PORTS), POLICY, environment, SEED_ROLES)
    assert [r["status"] for r in rows] == expected
    if environment == "production":
        assert "production allows only frontend:3010" in rows[1]["evidence"]


def test_published_ports_compare_services_not_host_ports() -> None:
    """An isolated copy on other host ports passes, noting the seed's port."""
    [row] = ca.check_ports(_ports(("frontend", 3010, 13010)), POLICY, "production", SEED_ROLES,
                           seed_host_ports=True)
    assert row["status"] == "pass" and "seed's host port 3010" in row["evidence"]


def test_published_store_is_an_error_on_any_stack() -> None:
    """On a stack named otherwise: the database/cache published fails even in development,
    another service published outside the list is only a warning there."""
    roles = {"edge": "proxy", "api": "backend", "pg": "database", "kv": "cache",
             "web": "other"}
    bound, _ = load_policy().bind(roles, {"edge": 80, "api": 8000, "pg": 5432, "kv": 6379})
    ports = _ports(("edge", 80, 8080), ("pg", 5432, 15432), ("web", 3000, 3000))
    dev = ca.check_ports(ports, bound, "development", roles)
    prod = ca.check_ports(ports[ports["service"] != "pg"], bound, "production", roles)
    assert [r["status"] for r in dev] == ["pass", "pass", "warn"]
    assert [r["status"] for r in prod] == ["pass", "fail"]
    assert "seed's host port" not in dev[0]["evidence"]
    store = ca.check_ports(_ports(("kv", 6379, 6379)), bound, "production", roles)
    assert store[0]["status"] == "fail" and "the cache kv:6379" in store[0]["evidence"]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("open", "fail"), ("refused", "warn"), ("timeout", "pass"), ("unresolvable", "pass"),
     ("error", "skip")],
)
def test_frontend_isolation(outcome: str, status: str) -> None:
    """Open is a failure; refused is a warning (same network); dropped passes."""
    reach = schemas.to_frame("reachability", [
        {"source": "p_frontend", "source_service": "frontend", "target_service": "database",
         "target_port": 5432, "outcome": outcome, "connect_ms": 0.3, "method": "setns"},
        {"source": "p_frontend", "source_service": "frontend", "target_service": "backend",
         "target_port": 3011, "outcome": "open", "connect_ms": 0.3, "method": "setns"},
    ])
    assert _status(ca.check_isolation(reach, SEED_ROLES)) == [
        ("p_frontend -> database:5432", status)]


def test_proxy_isolation_follows_the_roles() -> None:
    """Whatever the names: the proxy's probes of every database and cache are judged."""
    reach = schemas.to_frame("reachability", [
        {"source": "s-edge-1", "source_service": "edge", "target_service": "kv",
         "target_port": 6379, "outcome": "open", "connect_ms": 0.3, "method": "setns"},
        {"source": "s-edge-1", "source_service": "edge", "target_service": "api",
         "target_port": 8000, "outcome": "open", "connect_ms": 0.3, "method": "setns"},
        {"source": "s-api-1", "source_service": "api", "target_service": "kv",
         "target_port": 6379, "outcome": "open", "connect_ms": 0.3, "method": "setns"},
    ])
    roles = {"edge": "proxy", "api": "backend", "kv": "cache"}
    assert _status(ca.check_isolation(reach, roles)) == [("s-edge-1 -> kv:6379", "fail")]


def test_audit_puts_every_check_in_one_frame() -> None:
    """All check ids appear (skipped when live is off), with the environment filled in."""
    frames = {name: schemas.empty_frame(name) for name in
              ("containers", "env", "ports", "dns", "endpoints", "reachability")}
    ctx = ca.AuditContext(environment="production", policy=POLICY, prefix="p")
    checks = ca.audit(frames, ctx)
    schemas.validate("checks", checks)
    assert list(dict.fromkeys(checks["check_id"])) == list(CHECKS)
    assert set(checks["environment"]) == {"production"}


def test_unknown_environment_is_a_parameter_error() -> None:
    """Only development and production are audited."""
    with pytest.raises(ParameterError, match="staging"):
        ca.check_environment("staging")


def test_audit_evidence_never_carries_url_credentials() -> None:
    """A credential in a URL the checks quote is masked in the checks frame."""
    frames = {name: schemas.empty_frame(name) for name in
              ("containers", "dns", "endpoints", "reachability", "ports")}
    frames["env"] = _env(("p_f", "frontend", "NEXT_PUBLIC_API_URL",
                          "http://user:s3cretvalue@localhost:3011"))
    checks = ca.audit(frames, ca.AuditContext(environment="production", policy=POLICY, prefix="p"))
    assert "s3cretvalue" not in checks.to_json()
    assert "user:***@localhost" in " ".join(checks["evidence"])
