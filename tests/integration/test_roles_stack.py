"""Roles, health and KPIs on a Compose project that is not the lab and publishes no port.

The test writes its own project (``rdt<hex>``): ``proxy`` (nginx on 8080: ``/`` -> web,
``/api/`` -> an upstream with keep-alive to api), ``web`` (``python3 -m http.server 4000``,
no healthcheck), ``api`` (a small Python service on 8000 holding connections to db and
cache), ``worker`` (no port; talks to db and cache), ``db`` (PostgreSQL) and ``cache``
(Redis with a password), from the lab's images; nothing is published on the host.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pandas as pd
import pytest
import yaml

import revivadiag as rd
from revivadiag.analyze.diagnosis import diagnose
from revivadiag.lab import BuildReport, LabInstance
from revivadiag.lab.compose import compose_command
from revivadiag.lab.images import base_tag, service_tag
from revivadiag.lab.lifecycle import unique_prefix

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 120.0

NGINX_CONF = """worker_processes 1;
pid /tmp/nginx.pid;
error_log /dev/stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    upstream api_up { server api:8000; keepalive 8; }
    server {
        listen 8080;
        location / { proxy_pass http://web:4000; }
        location /api/ {
            proxy_pass http://api_up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
"""

API = """import http.server, os, threading, time
import psycopg, redis

lock = threading.Lock()
while True:
    try:
        db = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, connect_timeout=2)
        kv = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2)
        kv.ping()
        break
    except Exception:
        time.sleep(0.5)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        code, body = 404, b"not found"
        if self.path in ("/health", "/api/health"):
            with lock:
                db.execute("select 1")
                kv.ping()
            code, body = 200, b'{"status": "ok"}'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""

WORKER = """import os, time
import psycopg, redis

while True:
    try:
        db = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, connect_timeout=2)
        kv = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=2)
        while True:
            db.execute("select 1")
            kv.ping()
            time.sleep(1)
    except Exception:
        time.sleep(0.5)
"""


def compose_file(directory: Path, db_password: str, redis_password: str) -> Path:
    """The project's compose file (and the files it mounts) in ``directory``."""
    (directory / "nginx.conf").write_text(NGINX_CONF)
    (directory / "api.py").write_text(API)
    (directory / "worker.py").write_text(WORKER)
    base = base_tag()
    env = {"DATABASE_URL": f"postgresql://revivatech:{db_password}@db:5432/revivatech",
           "REDIS_URL": f"redis://:{redis_password}@cache:6379/0"}
    curl = ["CMD", "curl", "-fsS", "-o", "/dev/null", "--max-time", "2"]
    services = {
        "db": {"image": service_tag("database"), "environment": {
            "POSTGRES_PASSWORD": db_password}, "networks": ["data"],
            "healthcheck": {"test": ["CMD", "/usr/lib/postgresql/15/bin/pg_isready", "-q", "-h",
                                     "127.0.0.1"], "interval": "1s", "retries": 60}},
        "cache": {"image": service_tag("redis"), "environment": {
            "REDIS_PASSWORD": redis_password}, "networks": ["data"]},
        "api": {"image": base, "command": ["python3", "-u", "/srv/api.py"], "environment": env,
                "volumes": [f"{directory / 'api.py'}:/srv/api.py:ro"],
                "networks": ["front", "data"],
                "healthcheck": {"test": [*curl, "http://127.0.0.1:8000/health"],
                                "interval": "1s", "retries": 60}},
        "worker": {"image": base, "command": ["python3", "-u", "/srv/worker.py"],
                   "environment": env, "networks": ["data"],
                   "volumes": [f"{directory / 'worker.py'}:/srv/worker.py:ro"]},
        "web": {"image": base, "command": ["python3", "-m", "http.server", "4000"],
                "working_dir": "/srv", "networks": ["front"]},
        "proxy": {"image": base, "networks": ["front"], "restart": "on-failure",
                  "command": ["nginx", "-c", "/etc/rd/nginx.conf", "-g", "daemon off;"],
                  "volumes": [f"{directory / 'nginx.conf'}:/etc/rd/nginx.conf:ro"],
                  "depends_on": ["api", "web"],
                  "healthcheck": {"test": [*curl, "http://127.0.0.1:8080/api/health"],
                                  "interval": "1s", "retries": 60}},
    }
    path = directory / "docker-compose.yml"
    path.write_text(yaml.safe_dump({"services": services,
                                    "networks": {"front": {}, "data": {}}}))
    return path


def _compose(project: str, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*compose_command(), "-p", project, "-f", str(path), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=180,
                          env={**os.environ, "COMPOSE_PROJECT_NAME": project})


def _wait_healthy(client: docker.DockerClient, project: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        cs = client.containers.list(all=True, filters={
            "label": f"com.docker.compose.project={project}"})
        states = [(c.attrs["State"].get("Health") or {}).get("Status", c.status) for c in cs]
        if len(cs) == 6 and all(s in ("healthy", "running") for s in states) \
                and all(c.status == "running" for c in cs):
            return
        time.sleep(1)
    raise AssertionError(f"{project} not healthy in {START_TIMEOUT_S} s: {states}")


@pytest.fixture(scope="module")
def shop(engine: docker.DockerClient, lab_images: BuildReport,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The running project (its name); removed with its networks and volumes afterwards."""
    project = unique_prefix()
    path = compose_file(tmp_path_factory.mktemp(project), secrets.token_hex(12),
                        secrets.token_hex(12))
    try:
        up = _compose(project, path, "up", "-d")
        assert up.returncode == 0, up.stderr[-2000:]
        _wait_healthy(engine, project)
        time.sleep(2)  # the worker's connections are up
        yield project
    finally:
        _compose(project, path, "down", "-v", "--remove-orphans")


@pytest.fixture(scope="module")
def shop_snap(shop: str) -> rd.Snapshot:
    """One snapshot of the project."""
    return rd.snapshot(project=shop, samples=5)


def test_roles_are_learned(shop_snap: rd.Snapshot) -> None:
    """Every role from the stack itself: nginx's process, /api upstream, sockets, traffic."""
    rows = shop_snap.roles.set_index("service")
    assert rows["role"].to_dict() == {"api": "backend", "cache": "cache", "db": "database",
                                      "proxy": "proxy", "web": "other", "worker": "worker"}
    assert rows["port"].dropna().astype(int).to_dict() == {
        "api": 8000, "cache": 6379, "db": 5432, "proxy": 8080, "web": 4000}
    assert pd.isna(rows.loc["worker", "port"]) and list(rows.loc["worker", "ports"]) == []
    assert rows.loc["api", "decided_by"] == "proxy" and rows.loc["api", "confidence"] == "high"
    assert rows.loc["worker", "decided_by"] == "traffic"
    assert not rows["ambiguous"].any()
    assert "UNDECIDED" not in str(rows["decided_by"].tolist())
    assert shop_snap.ports.empty  # nothing published


def test_latency_and_health_are_measured(shop_snap: rd.Snapshot) -> None:
    """Direct and through the proxy, from the proxy's namespace; every store checked."""
    total = shop_snap.latency[shop_snap.latency["phase"] == "total"]
    assert set(total["path"]) == {"direct", "proxy"}
    assert set(total["samples"]) == {5} and set(total["errors"]) == {0}
    assert set(total["url"]) == {"http://api:8000/api/health",
                                 "http://127.0.0.1:8080/api/health"}
    health = shop_snap.health.set_index(["service", "check"])["status"].to_dict()
    assert health[("api", "http")] == "healthy"
    assert health[("db", "postgres_internal")] == "healthy"
    assert health[("cache", "redis_internal")] == "healthy"
    assert health[("web", "docker")] == "unknown"  # no healthcheck: not an error
    assert health[("db", "postgres_external")] == "unknown"  # not published
    assert not any(s == "unhealthy" for s in health.values())


def test_diagnose_measures_every_kpi(shop_snap: rd.Snapshot) -> None:
    """All five KPIs measured on a stack that publishes nothing; no naming finding; the
    proxy reached on its own address."""
    d = diagnose(shop_snap, environment="production", requests=30, burst=10)
    kpis = d.kpis.set_index("kpi")
    assert kpis["value"].notna().all(), kpis["detail"].to_dict()
    assert kpis.loc["connection_reuse", "value"] > 90.0
    assert d.reuse is not None and not d.reuse.url.startswith("http://127.0.0.1")
    ids = set(d.findings["id"])
    assert "RD-NAME-001" not in ids and "RD-ROLE-001" not in ids
    assert "RD-NET-001" not in ids  # the proxy cannot reach db or cache (no shared network)
    assert "RD-PRX-001" not in ids  # upstream keep-alive to the backend is configured
    assert "RD-PRX-003" not in ids  # no WebSocket location: not tried, not a failure
    checks = d.checks.set_index("check_id")
    assert checks.loc["container-naming", "status"] == "skip"
    assert checks.loc["proxy-keepalive", "status"] == "pass"
    declared = d.violations[d.violations["basis"] == "declared"]
    assert len(declared) and set(declared["verdict"]) == {"ok"}
    # the policy's cache/database rules bound to this stack's services
    judged = set(zip(d.violations["source_service"], d.violations["target_service"],
                     strict=True))
    assert {("proxy", "db"), ("proxy", "cache"), ("api", "db"), ("proxy", "api")} <= judged


def test_local_programs_match_docker_top(lab_current: LabInstance,
                                        engine: docker.DockerClient) -> None:
    """The programs read from /proc for a container on this host are those ``docker top``
    lists (processes a healthcheck starts come and go: the container's main program is in
    both), and a pid that is not the container's gives None (the engine is asked then)."""
    from revivadiag.collect.roles import command_words
    from revivadiag.collect.stack import local_programs, top_programs

    for name in lab_current.containers.values():
        inspect = engine.api.inspect_container(name)
        pid, cid = int(inspect["State"]["Pid"]), str(inspect["Id"])
        here = local_programs(pid, cid)
        assert here, name
        main = command_words(here[0])[0]
        assert main in top_programs(engine, cid), (name, here)
        assert local_programs(os.getpid(), cid) is None  # this process is not the container's


def test_socket_facts_from_netlink_match_the_proc_files(lab_current: LabInstance,
                                                        engine: docker.DockerClient) -> None:
    """The roles' socket facts asked of the kernel over netlink (a socket opened in each
    container's namespace) are those the ``/proc/<pid>/net/tcp{,6}`` files give."""
    import urllib.request

    from revivadiag.collect import connections as conn
    from revivadiag.collect import stack
    from revivadiag.collect.inventory import gather

    for _ in range(3):  # the proxy opens (and, without keep-alive, closes) connections
        with urllib.request.urlopen(
                f"http://127.0.0.1:{lab_current.ports['frontend']}/api/health") as res:
            assert res.status == 200
    inv = gather(engine, lab_current.prefix)
    by_netlink, by_files = stack.StackFacts(), stack.StackFacts()
    stack.socket_facts(inv, conn.read_procfs_tables, "procfs", by_netlink)
    stack.socket_facts(inv, conn.read_procfs_tables, "proc files", by_files)

    def key(e: Any) -> tuple[str, str, int]:
        return (e.source, e.target, e.port)

    assert by_netlink.listening == by_files.listening
    assert len(by_netlink.listening) == len(lab_current.containers)
    assert sorted(by_netlink.edges, key=key) == sorted(by_files.edges, key=key)
    assert by_netlink.edges  # the stack's services talk to each other
