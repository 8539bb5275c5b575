"""Proxy checks: nginx parsing (the lab's real templates), keep-alive, re-resolution, live facts."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from revivadiag import schemas
from revivadiag.analyze import proxy_audit
from revivadiag.collect import nginx_conf
from revivadiag.collect.live_facts import (
    FAKE_CLIENT_IP,
    FOREIGN_ORIGIN,
    HttpResult,
    LiveFacts,
)
from revivadiag.collect.proxy_config import nginx_conf_path

FRONTEND = resources.files("revivadiag.lab").joinpath("images/frontend")
UPSTREAM = ("upstream backend {\n    server 172.20.0.3:3011 max_fails=0;\n    keepalive 32;\n"
            "    keepalive_timeout 60s;\n}\n")


def _render(variant: str) -> dict[str, str]:
    """The lab's nginx config as its entrypoint writes it (file name -> text)."""
    text = FRONTEND.joinpath(f"nginx-{variant}.conf.tmpl").read_text()
    values = {"BACKEND_HOST": "p_new_backend", "RATE_LIMIT_RPS": "30", "RATE_LIMIT_BURST": "20"}
    text = re.sub(r"\$\{([A-Z_]+)\}", lambda m: values[m.group(1)], text)
    files = {"/run/nginx/nginx.conf": text}
    if variant == "target":
        files["/run/nginx/upstream.conf"] = UPSTREAM
    return files


def test_current_lab_config_has_no_keepalive_and_resolves_once() -> None:
    """Container name baked into proxy_pass: HTTP/1.0, no upstream, no resolver."""
    cfg = nginx_conf.parse_files(_render("current"))
    assert {(p.host, p.port) for p in cfg.proxy_passes} == {("p_new_backend", 3011)}
    status, evidence = nginx_conf.keepalive_verdict(cfg)
    assert status == "fail" and "no upstream block" in evidence
    status, evidence = nginx_conf.resolution_verdict(cfg)
    assert status == "fail" and "resolved once at start (no resolver)" in evidence


def test_target_lab_config_keeps_alive_and_needs_its_watcher() -> None:
    """Upstream with keepalive 32 over HTTP/1.1; a fixed IP is fine only with a watcher."""
    cfg = nginx_conf.parse_files(_render("target"))
    assert cfg.upstreams["backend"].keepalive == 32
    assert {(p.host, p.port) for p in cfg.proxy_passes} == {("backend", 3011)}
    assert nginx_conf.keepalive_verdict(cfg)[0] == "pass"
    status, evidence = nginx_conf.resolution_verdict(cfg)
    assert status == "fail" and "fixed address at start" in evidence
    status, evidence = nginx_conf.resolution_verdict(cfg, watcher="RESOLVE_INTERVAL_S=5")
    assert status == "pass" and "re-resolved outside nginx" in evidence


@pytest.mark.parametrize(
    ("conf", "keepalive", "resolution"),
    [
        ("resolver 127.0.0.11 valid=10s; server { set $b http://backend:3011;"
         " location /api/ { proxy_pass $b; } }", "fail", "pass"),
        ("resolver 127.0.0.11; upstream b { zone b 64k; server backend:3011 resolve; keepalive 8;}"
         " server { location /api/ { proxy_http_version 1.1; proxy_set_header Connection '';"
         " proxy_pass http://b; } }", "pass", "pass"),
        ("upstream b { server backend:3011; keepalive 8; } server { location /api/ {"
         " proxy_pass http://b; } }", "fail", "fail"),  # keepalive without HTTP/1.1
        ("server { location / { root /srv; } }", "skip", "skip"),
    ],
)
def test_verdicts_on_other_configurations(conf: str, keepalive: str, resolution: str) -> None:
    """Variable proxy_pass + resolver, `resolve` servers, keepalive without HTTP/1.1, none."""
    cfg = nginx_conf.parse_files({"/etc/nginx/nginx.conf": f"http {{ {conf} }}"})
    assert nginx_conf.keepalive_verdict(cfg)[0] == keepalive
    assert nginx_conf.resolution_verdict(cfg)[0] == resolution


def test_tokenizer_handles_quotes_and_comments() -> None:
    """Quoted strings keep spaces and braces; comments vanish."""
    tree = nginx_conf.parse('a "x { y";  # b c;\nd \'e\' f;')
    assert [(d.name, d.args) for d in tree] == [("a", ["x { y"]), ("d", ["e", "f"])]


def test_split_nginx_t_dump() -> None:
    """`nginx -T` output becomes one text per file."""
    dump = ("nginx: the configuration file /a.conf syntax is ok\n"
            "# configuration file /a.conf:\nhttp { include /b.conf; }\n"
            "# configuration file /b.conf:\nupstream u { server x; }\n")
    assert nginx_conf.split_dump(dump) == {"/a.conf": "http { include /b.conf; }\n",
                                           "/b.conf": "upstream u { server x; }\n"}


def test_nginx_conf_path_from_docker_top() -> None:
    """The master's -c argument, else nginx's default path."""
    top = {"Titles": ["UID", "PID", "CMD"],
           "Processes": [["root", "1", "/usr/bin/python3 /usr/local/bin/frontend-entrypoint"],
                         ["root", "7", "nginx: master process /usr/sbin/nginx -c "
                                       "/run/nginx/nginx.conf -g daemon off;"]]}
    assert nginx_conf_path(top) == "/run/nginx/nginx.conf"
    assert nginx_conf_path({"Titles": ["CMD"], "Processes": [["sleep 1"]]}) == \
        "/etc/nginx/nginx.conf"


def test_watcher_declared_by_env_or_label() -> None:
    """RESOLVE_INTERVAL_S on the proxy (the lab's target) or an explicit label."""
    env = schemas.to_frame("env", [{"container": "p_frontend", "service": "frontend",
                                    "key": "RESOLVE_INTERVAL_S", "value": "5"}])
    none = schemas.empty_frame("env")
    labelled = schemas.to_frame("containers", [{
        "name": "p_frontend", "service": "frontend",
        "labels": json.dumps({proxy_audit.WATCHER_LABEL: "dns-watcher"})}])
    assert "RESOLVE_INTERVAL_S=5" in (proxy_audit.declared_watcher(
        env, schemas.empty_frame("containers"), "frontend") or "")
    assert "dns-watcher" in (proxy_audit.declared_watcher(none, labelled, "frontend") or "")
    assert proxy_audit.declared_watcher(none, schemas.empty_frame("containers"), "frontend") is None
    assert proxy_audit.declared_watcher(env, labelled, "edge") is None  # another proxy


def _echo(xff: str, **extra: str) -> HttpResult:
    headers = {"Host": "127.0.0.1", "X-Forwarded-For": xff, **extra}
    return HttpResult(200, {}, json.dumps({"headers": headers, "http_version": "1.0"}))


@pytest.mark.parametrize(
    ("xff", "extra", "fwd", "spoof"),
    [
        (f"{FAKE_CLIENT_IP}, 172.20.0.1",
         {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "h"}, "pass", "fail"),
        ("172.20.0.1", {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "h"}, "pass", "pass"),
        ("172.20.0.1", {}, "fail", "pass"),
    ],
)
def test_forwarded_headers_and_spoofing(xff: str, extra: dict[str, str], fwd: str,
                                        spoof: str) -> None:
    """What the backend received: all three X-Forwarded-*; the client's XFF dropped."""
    live = LiveFacts("http://127.0.0.1:3010", echo=_echo(xff, **extra))
    rows = proxy_audit.check_forwarded(live)
    assert [(r["check_id"], r["status"]) for r in rows] == [
        ("forwarded-headers", fwd), ("xff-spoofing", spoof)]


@pytest.mark.parametrize(
    ("acao", "status"), [("*", "fail"), (FOREIGN_ORIGIN, "fail"), ("", "pass"),
                         ("http://localhost:3010", "pass")],
)
def test_cors_preflight(acao: str, status: str) -> None:
    """A foreign origin allowed (`*` or reflected) fails."""
    headers = {"access-control-allow-origin": acao} if acao else {}
    live = LiveFacts("http://127.0.0.1:3010", cors={FOREIGN_ORIGIN: HttpResult(204, headers)})
    assert proxy_audit.check_cors(live)[0]["status"] == status


@pytest.mark.parametrize(
    ("burst", "status"), [({"200": 50}, "fail"), ({"200": 21, "429": 29}, "pass"),
                          ({"200": 40, "503": 10}, "pass"), ({}, "skip")],
)
def test_rate_limit(burst: dict[str, int], status: str) -> None:
    """Any 429/503 in the burst shows a limit."""
    live = LiveFacts("http://127.0.0.1:3010", burst=burst)
    assert proxy_audit.check_rate_limit(live)[0]["status"] == status


def test_proxy_checks_with_live_off_are_all_skipped() -> None:
    """Seven checks, each a skip with the reason."""
    rows = proxy_audit.proxy_checks(None, None)
    assert len(rows) == 7 and {r["status"] for r in rows} == {"skip"}


def test_websocket_result_is_reported() -> None:
    """A failed upgrade is a failure with the error as evidence."""
    live = LiveFacts("http://127.0.0.1:3010", websocket=(False, "InvalidStatus: HTTP 404"))
    [row] = proxy_audit.check_websocket(live)
    assert (row["status"], row["evidence"]) == ("fail", "InvalidStatus: HTTP 404")


def test_keepalive_is_judged_on_the_routes_to_the_backend() -> None:
    """A `/` route to an app without keep-alive does not fail the backend's keep-alive."""
    conf = ("upstream api_up { server api:8000; keepalive 8; }\n"
            "server { listen 8080; location / { proxy_pass http://web:3000; }\n"
            "  location /api/ { proxy_pass http://api_up; proxy_http_version 1.1;\n"
            "                   proxy_set_header Connection \"\"; } }\n")
    facts = LiveFacts("", nginx_files={"/etc/nginx/nginx.conf": f"http {{ {conf} }}"},
                      nginx_source="test", backend_hosts=frozenset({"api"}))
    [keepalive, _] = proxy_audit.check_nginx(facts, None)
    assert keepalive["status"] == "pass" and "/api/" in keepalive["evidence"]
    facts.backend_hosts = frozenset()
    assert proxy_audit.check_nginx(facts, None)[0]["status"] == "fail"  # every route judged


def test_a_variable_proxy_pass_to_the_backend_is_found() -> None:
    """`set $api_host api; proxy_pass http://$api_host:8000` leads to the backend: only that
    route is judged (re-resolved through the resolver: a pass), not `/` to an app."""
    conf = ("resolver 127.0.0.11 valid=10s;\n"
            "upstream web_app { server web:3000; keepalive 16; }\n"
            "server { location /api/ { set $api_host api; proxy_pass http://$api_host:8000; }\n"
            "         location / { proxy_pass http://web_app; } }\n")
    facts = LiveFacts("", nginx_files={"/etc/nginx/conf.d/default.conf": f"http {{ {conf} }}"},
                      nginx_source="test", backend_hosts=frozenset({"api"}))
    [keepalive, resolution] = proxy_audit.check_nginx(facts, None)
    assert resolution["status"] == "pass" and "/api/" in resolution["evidence"]
    assert keepalive["status"] == "fail" and "web_app" not in keepalive["evidence"]
