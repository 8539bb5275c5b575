"""A proxy's declared rate limit (``limit_req_zone`` / ``limit_req``) is learned from its
configuration, so that diagnose's own requests stay under it (they share the proxy's key
with its other clients) and the rate-limit check judges the declaration."""

from __future__ import annotations

from pathlib import Path

import pytest

from revivadiag.analyze import proxy_audit
from revivadiag.collect import nginx_conf
from revivadiag.collect.live_facts import LiveFacts

ROOT = Path(__file__).resolve().parents[2]


def lab_target_conf(rps: str, burst: str) -> dict[str, str]:
    """The lab frontend's target template with its variables filled in, as nginx -T shows."""
    text = (ROOT / "revivadiag/lab/images/frontend/nginx-target.conf.tmpl").read_text()
    text = text.replace("${RATE_LIMIT_RPS}", rps).replace("${RATE_LIMIT_BURST}", burst)
    return {"/run/nginx/nginx.conf": text,
            "/run/nginx/upstream.conf": "upstream backend { server 10.0.0.5:3011; }"}


@pytest.mark.parametrize(("path", "want"), [
    ("/api/health", ("/api/", "api", 30.0, 30, True)),
    ("/api/auth/login", ("/api/auth/", "api", 30.0, 30, True)),
    ("/api/debug/echo", None),   # its own location, no limit_req
    ("/", None),
    ("/ws", None),
])
def test_limit_for_a_path_follows_nginx_prefix_locations(
        path: str, want: tuple[str, str, float, int, bool] | None) -> None:
    cfg = nginx_conf.parse_files(lab_target_conf("30", "30"))
    got = cfg.limit_for(path)
    assert (None if got is None else (got.location, got.zone, got.rate_per_s, got.burst,
                                      got.nodelay)) == want


def test_rate_per_minute_server_level_and_tightest_zone() -> None:
    cfg = nginx_conf.parse_files({"nginx.conf": """
        http {
          limit_req_zone $binary_remote_addr zone=slow:1m rate=120r/m;
          limit_req_zone $binary_remote_addr zone=fast:1m rate=50r/s;
          server {
            limit_req zone=fast burst=100;
            location /a/ { limit_req zone=slow burst=4; limit_req zone=fast; }
            location = /exact { limit_req zone=fast burst=7 nodelay; }
          }
        }"""})
    a = cfg.limit_for("/a/x")
    assert a is not None and (a.zone, a.rate_per_s, a.burst) == ("slow", 2.0, 4)
    assert a.interval_s() == 1.0  # half of 2 r/s
    exact = cfg.limit_for("/exact")
    assert exact is not None and (exact.zone, exact.burst, exact.nodelay) == ("fast", 7, True)
    other = cfg.limit_for("/elsewhere")
    assert other is not None and (other.location, other.zone) == ("", "fast")


def test_a_limit_req_without_its_zone_is_not_a_limit() -> None:
    cfg = nginx_conf.parse_files({"nginx.conf": "http { server { location / { limit_req "
                                                "zone=missing burst=5; } } }"})
    assert cfg.rate_limits() == [] and cfg.limit_for("/") is None


def test_declared_limit_passes_with_the_pacing_said() -> None:
    live = LiveFacts(base_url="http://127.0.0.1:1", health_path="/api/health",
                     burst={"200": 15}, rate_limit="limit_req zone=api rate=30r/s burst=30 "
                     "nodelay on /api/", paced="15 requests at 15/s, under the declared ...")
    row = proxy_audit.check_rate_limit(live)[0]
    assert row["status"] == "pass"
    assert "declared: limit_req zone=api rate=30r/s" in row["evidence"]
    assert "paced" in row["evidence"] and "200: 15" in row["evidence"]


def test_undeclared_limit_is_still_judged_by_the_burst() -> None:
    live = LiveFacts(base_url="http://127.0.0.1:1", health_path="/api/health",
                     burst={"200": 10})
    assert proxy_audit.check_rate_limit(live)[0]["status"] == "fail"
