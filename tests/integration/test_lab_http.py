"""The lab's services through the frontend proxy on 127.0.0.1, in both variants."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from revivadiag.lab import LabInstance

pytestmark = pytest.mark.integration

VARIANT_FIXTURES = ["lab_current", "lab_target"]
SEED_USER = {"email": "test@example.com", "password": "password"}


@pytest.fixture(params=VARIANT_FIXTURES)
def lab(request: pytest.FixtureRequest) -> LabInstance:
    """Each test runs once against `current` and once against `target`."""
    instance: LabInstance = request.getfixturevalue(request.param)
    return instance


def test_api_health_is_200_with_both_dependencies(lab: LabInstance) -> None:
    """GET /api/health through the proxy is 200 and reports PostgreSQL and Redis healthy."""
    response = httpx.get(lab.url("/api/health"), timeout=5)
    body = response.json()
    assert (response.status_code, body["status"]) == (200, "healthy")
    assert {k: v["status"] for k, v in body["checks"].items()} == {
        "database": "healthy",
        "redis": "healthy",
    }


def test_login_then_profile(lab: LabInstance) -> None:
    """The seed's end-to-end test: login with the seeded user, then the profile is 200."""
    with httpx.Client(base_url=lab.url(""), timeout=5) as client:
        login = client.post("/api/auth/login", json=SEED_USER)
        assert login.status_code == 200
        assert "session" in client.cookies
        profile = client.get("/api/user/profile")
    assert (profile.status_code, profile.json()["email"]) == (200, "test@example.com")


def test_bearer_token_also_authenticates(lab: LabInstance) -> None:
    """The token returned by login works as ``Authorization: Bearer``."""
    token = httpx.post(lab.url("/api/auth/login"), json=SEED_USER, timeout=5).json()["token"]
    profile = httpx.get(
        lab.url("/api/user/profile"), headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    assert profile.status_code == 200


def test_wrong_password_is_401(lab: LabInstance) -> None:
    """A wrong password is rejected with 401 and no cookie."""
    response = httpx.post(
        lab.url("/api/auth/login"), json={**SEED_USER, "password": "wrong"}, timeout=5
    )
    assert (response.status_code, response.cookies.get("session")) == (401, None)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer forged.0000"}, {"Cookie": "session=nope"}],
    ids=["none", "forged-bearer", "bad-cookie"],
)
def test_profile_without_valid_session_is_401(lab: LabInstance, headers: dict[str, str]) -> None:
    """No session, a forged token or an unknown cookie: 401."""
    response = httpx.get(lab.url("/api/user/profile"), headers=headers, timeout=5)
    assert response.status_code == 401


def test_websocket_echo(lab: LabInstance) -> None:
    """A WebSocket through the proxy's /ws echoes text and binary frames."""
    url = f"ws://127.0.0.1:{lab.ports['frontend']}/ws"
    with ws_connect(url, open_timeout=5, close_timeout=2) as ws:
        ws.send("hello lab")
        text = ws.recv(timeout=5)
        ws.send(b"\x00\x01")
        data = ws.recv(timeout=5)
    assert (text, data) == ("hello lab", b"\x00\x01")


@pytest.mark.parametrize(("ms", "status"), [("0", 200), ("30", 200), ("5001", 400), ("-1", 400),
                                             ("abc", 400)])
def test_debug_delay_is_bounded(lab: LabInstance, ms: str, status: int) -> None:
    """/api/debug/delay accepts 0..5000 ms and rejects anything else with 400."""
    response = httpx.get(lab.url("/api/debug/delay"), params={"ms": ms}, timeout=10)
    assert response.status_code == status


def test_debug_delay_waits(lab: LabInstance) -> None:
    """The delay is real (at least the asked milliseconds)."""
    started = time.perf_counter()
    httpx.get(lab.url("/api/debug/delay"), params={"ms": "200"}, timeout=10)
    assert time.perf_counter() - started >= 0.2


def test_echo_masks_credentials(lab: LabInstance) -> None:
    """/api/debug/echo shows headers but masks Authorization and Cookie values."""
    response = httpx.get(
        lab.url("/api/debug/echo"),
        headers={"Authorization": "Bearer secret-value", "X-Probe": "p1"},
        timeout=5,
    )
    headers = response.json()["headers"]
    assert (headers["Authorization"], headers["X-Probe"]) == ("***", "p1")


def _forwarded_for(lab: LabInstance) -> str:
    response = httpx.get(
        lab.url("/api/debug/echo"), headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5
    )
    return str(response.json()["headers"]["X-Forwarded-For"])


def test_current_appends_client_forwarded_for(lab_current: LabInstance) -> None:
    """current passes a client's own X-Forwarded-For on (spoofable), then the peer."""
    assert _forwarded_for(lab_current).startswith("203.0.113.9, ")


def test_target_sets_forwarded_for_from_peer(lab_target: LabInstance) -> None:
    """target replaces X-Forwarded-For with the peer address."""
    assert "203.0.113.9" not in _forwarded_for(lab_target)


def test_target_keeps_upstream_connections_alive(lab_target: LabInstance) -> None:
    """target speaks HTTP/1.1 to the backend without 'Connection: close'; current does not."""
    echo = httpx.get(lab_target.url("/api/debug/echo"), timeout=5).json()
    assert (echo["http_version"], "Connection" in echo["headers"]) == ("1.1", False)


def test_current_closes_upstream_connections(lab_current: LabInstance) -> None:
    """current proxies with HTTP/1.0 and Connection: close (no keep-alive)."""
    echo = httpx.get(lab_current.url("/api/debug/echo"), timeout=5).json()
    assert (echo["http_version"], echo["headers"].get("Connection")) == ("1.0", "close")


@pytest.mark.parametrize(
    ("fixture", "api_url"),
    [("lab_current", '"http://localhost:3011"'), ("lab_target", '""')],
)
def test_page_api_url(request: pytest.FixtureRequest, fixture: str, api_url: str) -> None:
    """The page's script uses the absolute localhost:3011 in current, relative in target."""
    lab: LabInstance = request.getfixturevalue(fixture)
    page = httpx.get(lab.url("/"), timeout=5).text
    assert f"const API_URL = {api_url};" in page


def _burst(lab: LabInstance, count: int = 50) -> list[int]:
    with (
        httpx.Client(timeout=10) as client,
        concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool,
    ):
        futures = [pool.submit(client.get, lab.url("/api/health")) for _ in range(count)]
        codes = [f.result().status_code for f in futures]
    time.sleep(1.5)  # let the limiter's bucket drain for the tests that follow
    return codes


def test_target_rate_limits_api_bursts(lab_target: LabInstance) -> None:
    """A burst of 50 requests at /api/ sees some 429 in target."""
    codes = _burst(lab_target)
    assert 429 in codes and 200 in codes, json.dumps(codes)


def test_current_has_no_rate_limit(lab_current: LabInstance) -> None:
    """The same burst is answered 200 throughout in current (the seed's missing control)."""
    assert set(_burst(lab_current)) == {200}
