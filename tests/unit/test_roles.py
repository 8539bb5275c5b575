"""Roles learned from the stack: the pure inference over fake stacks of several shapes."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from revivadiag import schemas
from revivadiag.collect.connections import Socket
from revivadiag.collect.proxy_config import nginx_routes, traefik_routes
from revivadiag.collect.roles import (
    Edge,
    ProxyRoute,
    Roles,
    command_words,
    compose_roles,
    declared_networks,
    image_words,
    infer_roles,
    software_of,
)
from revivadiag.collect.stack import healthcheck_path, listening_ports, service_edges


def _containers(*rows: tuple[str, str, str], labels: dict[str, dict[str, str]] | None = None,
                exposed: dict[str, list[str]] | None = None) -> pd.DataFrame:
    return schemas.to_frame("containers", [
        {"container_id": f"{i:x}" * 64, "name": name, "service": service, "image": image,
         "state": "running", "labels": json.dumps((labels or {}).get(service, {})),
         "exposed_ports": (exposed or {}).get(service, [])}
        for i, (name, service, image) in enumerate(rows, start=1)])


def _by_service(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    schemas.validate("roles", frame)
    return {str(r["service"]): r for r in frame.to_dict("records")}


def _roles(frame: pd.DataFrame) -> dict[str, str]:
    return {s: str(r["role"]) for s, r in _by_service(frame).items()}


# ---------------------------------------------------------------- the seed's shape


SEED_NGINX = {"/run/nginx/nginx.conf": """
http { server { listen 3010;
  location = / { try_files /index.html =404; }
  location /api/debug/ { proxy_pass http://rdt1_new_backend:3011; }
  location /api/ { proxy_pass http://rdt1_new_backend:3011; }
  location /ws { proxy_pass http://rdt1_new_backend:3011; } } }"""}


def test_seed_shape_from_processes_and_the_proxy_config() -> None:
    """The lab's images say nothing; the processes and nginx's /api upstream do."""
    containers = _containers(("rdt1_new_frontend", "frontend", "revivadiag/lab-frontend:latest"),
                             ("rdt1_new_backend", "backend", "revivadiag/lab-backend:latest"),
                             ("rdt1_new_database", "database", "revivadiag/lab-database:latest"),
                             ("rdt1_new_redis", "redis", "revivadiag/lab-redis:latest"))
    processes = {"frontend": ["frontend-entrypoint", "nginx", "nginx"],
                 "backend": ["python3"], "database": ["database-entrypoint", "postgres"],
                 "redis": ["redis-server"]}
    listening = {"frontend": [3010], "backend": [3011], "database": [5432], "redis": [6379]}
    frame = infer_roles(containers, listening=listening, processes=processes,
                        routes=nginx_routes("frontend", SEED_NGINX),
                        health_paths={"backend": "/health"})
    rows = _by_service(frame)
    assert _roles(frame) == {"frontend": "proxy", "backend": "backend", "database": "database",
                             "redis": "cache"}
    assert (rows["backend"]["port"], rows["backend"]["decided_by"],
            rows["backend"]["confidence"]) == (3011, "proxy", "high")
    assert "frontend forwards /api/ to rdt1_new_backend:3011" in rows["backend"]["evidence"]
    assert (rows["frontend"]["software"], rows["frontend"]["evidence"].split(";")[0]) == (
        "nginx", "process nginx runs nginx")
    assert rows["backend"]["http_path"] == "/health"
    assert not frame["ambiguous"].any()
    assert Roles(frame).problems() == []


def test_seed_names_are_only_the_last_resort() -> None:
    """Nothing but the names: the seed's services get their roles, with low confidence."""
    frame = infer_roles(_containers(("p_frontend", "frontend", "x"), ("p_backend", "backend", "y")))
    rows = _by_service(frame)
    assert _roles(frame) == {"frontend": "proxy", "backend": "backend"}
    assert {r["decided_by"] for r in rows.values()} == {"seed"}
    assert {r["confidence"] for r in rows.values()} == {"low"}


# ---------------------------------------------------------------- a public project's shape


WEB_API_NGINX = {"/etc/nginx/conf.d/default.conf": """
upstream api_upstream { server api:8000; keepalive 16; }
server { listen 80;
  location / { proxy_pass http://web:3000; }
  location /api/ { proxy_pass http://api_upstream/; } }"""}


def _public_stack(**extra: Any) -> pd.DataFrame:
    containers = _containers(("shop-proxy-1", "proxy", "nginx:1.25-alpine"),
                             ("shop-web-1", "web", "shop/web:latest"),
                             ("shop-api-1", "api", "ghcr.io/shop/api:2.1"),
                             ("shop-worker-1", "worker", "ghcr.io/shop/api:2.1"),
                             ("shop-db-1", "db", "postgres:16"),
                             ("shop-cache-1", "cache", "redis:7-alpine"))
    listening = {"proxy": [80], "web": [3000], "api": [8000], "worker": [], "db": [5432],
                 "cache": [6379]}
    edges = [Edge("proxy", "api", 8000), Edge("proxy", "web", 3000), Edge("api", "db", 5432),
             Edge("worker", "db", 5432), Edge("worker", "cache", 6379)]
    return infer_roles(containers, listening=listening, edges=edges,
                       routes=nginx_routes("proxy", WEB_API_NGINX), **extra)


def test_public_project_shape() -> None:
    """web/api/db/cache/worker on 8000: the /api upstream is the backend, the worker has no
    port and talks to the database and cache, / goes to an app."""
    frame = _public_stack()
    rows = _by_service(frame)
    assert _roles(frame) == {"proxy": "proxy", "web": "other", "api": "backend",
                             "worker": "worker", "db": "database", "cache": "cache"}
    assert rows["api"]["port"] == 8000 and rows["api"]["ports"] == [8000]
    assert (rows["api"]["route"], rows["web"]["route"]) == ("/api/", "/")
    assert rows["worker"]["ports"] == [] and rows["worker"]["decided_by"] == "traffic"
    assert "connects to cache, db" in rows["worker"]["evidence"]
    assert rows["db"]["software"] == "postgres" and rows["cache"]["software"] == "redis"
    roles = Roles(frame)
    assert (roles.service("proxy"), roles.service("backend"), roles.port("api")) == (
        "proxy", "api", 8000)
    assert roles.services("database") == ["db"] and roles.problems() == []


def test_backend_from_traffic_alone() -> None:
    """No readable proxy configuration: the service the proxy talks to is the backend."""
    containers = _containers(("s-edge-1", "edge", "haproxy:2.9"), ("s-app-1", "app", "acme/app"),
                             ("s-pg-1", "pg", "bitnami/postgresql:16"))
    frame = infer_roles(containers, listening={"edge": [80], "app": [8080], "pg": [5432]},
                        edges=[Edge("edge", "app", 8080), Edge("app", "pg", 5432)])
    rows = _by_service(frame)
    assert _roles(frame) == {"edge": "proxy", "app": "backend", "pg": "database"}
    assert (rows["app"]["decided_by"], rows["app"]["confidence"], rows["app"]["port"]) == (
        "traffic", "medium", 8080)


def test_traefik_routes_from_labels() -> None:
    """Traefik's Docker provider: the /api router's service is the backend."""
    labels = {"api": {"traefik.http.routers.api.rule": "Host(`x`) && PathPrefix(`/api`)",
                      "traefik.http.services.api.loadbalancer.server.port": "8000"},
              "web": {"traefik.http.routers.web.rule": "Host(`x`)"}}
    containers = _containers(("t-traefik-1", "traefik", "traefik:v3.0"),
                             ("t-api-1", "api", "acme/api"), ("t-web-1", "web", "acme/web"),
                             labels=labels)
    frame = infer_roles(containers, listening={"traefik": [80, 8080], "api": [8000],
                                               "web": [3000]},
                        routes=traefik_routes("traefik", labels))
    assert _roles(frame) == {"traefik": "proxy", "api": "backend", "web": "other"}
    assert _by_service(frame)["api"]["port"] == 8000


def test_an_nginx_app_behind_another_proxy_is_not_a_proxy() -> None:
    """Two nginx images: the one the edge proxy forwards to serves an app."""
    containers = _containers(("s-edge-1", "edge", "traefik:v3"), ("s-spa-1", "spa", "nginx:1"),
                             ("s-api-1", "api", "acme/api"))
    frame = infer_roles(containers, listening={"edge": [80], "spa": [80], "api": [8000]},
                        routes=[ProxyRoute("edge", "/", "spa", 80),
                                ProxyRoute("edge", "/api", "api", 8000)])
    assert _roles(frame) == {"edge": "proxy", "spa": "other", "api": "backend"}


# ---------------------------------------------------------------- declarations and policy


def test_explicit_label_and_compose_extension_win() -> None:
    """A label or x-revivadiag decides first, whatever the image says."""
    containers = _containers(("s-gw-1", "gw", "acme/gateway"), ("s-q-1", "q", "redis:7"),
                             ("s-api-1", "api", "acme/api"),
                             labels={"gw": {"revivadiag.role": "proxy"}})
    compose = {"services": {"q": {"x-revivadiag": {"role": "worker"}},
                            "api": {"labels": ["revivadiag.role=backend"]}}}
    frame = infer_roles(containers, compose=compose)
    rows = _by_service(frame)
    assert _roles(frame) == {"gw": "proxy", "q": "worker", "api": "backend"}
    assert {r["decided_by"] for r in rows.values()} == {"declared"}
    assert "container label revivadiag.role=proxy" in rows["gw"]["evidence"]
    assert "redis" in rows["q"]["evidence"]  # the image is still quoted


def test_a_label_that_names_no_role_is_said_and_ignored() -> None:
    """An unknown role in a label does not decide; the evidence says why."""
    frame = infer_roles(_containers(("s-a-1", "a", "postgres:16"),
                                    labels={"a": {"revivadiag.role": "db"}}))
    row = _by_service(frame)["a"]
    assert row["role"] == "database" and "'db'" not in row["evidence"]
    assert "revivadiag.role=db is not a role" in row["evidence"]


def test_policy_roles_decide_after_labels() -> None:
    """The policy's roles: section names the backend when nothing on the stack does."""
    frame = infer_roles(_containers(("s-a-1", "a", "acme/a"), ("s-b-1", "b", "acme/b")),
                        policy_roles={"backend": ["b"]})
    assert _roles(frame)["b"] == "backend"
    assert _by_service(frame)["b"]["decided_by"] == "policy"


def test_compose_roles_reads_the_normalised_dict() -> None:
    """x-revivadiag first, then the label (mapping form)."""
    data = {"services": {"a": {"x-revivadiag": {"role": "Cache"}, "labels": {}},
                         "b": {"labels": {"revivadiag.role": "proxy"}}, "c": {}}}
    assert compose_roles(data) == {"a": ("cache", "x-revivadiag.role"),
                                   "b": ("proxy", "label revivadiag.role")}


# ---------------------------------------------------------------- ambiguity and no evidence


def test_two_candidate_backends_are_ambiguous() -> None:
    """Two upstreams equally specific, neither /api: both flagged, each naming the other."""
    containers = _containers(("s-px-1", "px", "caddy:2"), ("s-a-1", "a", "acme/a"),
                             ("s-b-1", "b", "acme/b"))
    frame = infer_roles(containers, routes=[ProxyRoute("px", "/orders", "a", 8001),
                                            ProxyRoute("px", "/stock/", "b", 8002)])
    rows = _by_service(frame)
    assert (rows["a"]["role"], rows["b"]["role"]) == ("backend", "backend")
    assert bool(rows["a"]["ambiguous"]) and bool(rows["b"]["ambiguous"])
    assert rows["a"]["alternatives"] == "b as backend" and rows["a"]["confidence"] == "low"
    problems = Roles(frame).problems()
    assert len(problems) == 2 and "ambiguous" in problems[0]


def test_two_databases_both_hold_the_role() -> None:
    """Two postgres services: both are databases (every one is checked); not ambiguous,
    since the database role is not a single one."""
    frame = infer_roles(_containers(("s-pg-1", "pg", "postgres:16"),
                                    ("s-pg2-1", "pg2", "postgis/postgis:16")))
    assert _roles(frame) == {"pg": "database", "pg2": "database"}
    assert not frame["ambiguous"].any()
    assert Roles(frame).services("database") == ["pg", "pg2"]


def test_two_proxies_by_software_are_ambiguous() -> None:
    """nginx and haproxy, neither in front of the other: which one is the proxy is unclear."""
    frame = infer_roles(_containers(("s-a-1", "a", "nginx"), ("s-b-1", "b", "haproxy")))
    assert frame["ambiguous"].all() and set(frame["role"]) == {"proxy"}


def test_no_evidence_is_undecided() -> None:
    """A service nothing speaks for is 'other', decided by none, and reported."""
    frame = infer_roles(_containers(("s-x-1", "x", "acme/x")), listening={"x": []})
    row = _by_service(frame)["x"]
    assert (row["role"], row["decided_by"], row["confidence"]) == ("other", "none", "low")
    assert "listens on no port" in row["evidence"]
    assert Roles(frame).problems() == [f"x: role undecided; {row['evidence']}"]


# ---------------------------------------------------------------- words and facts


@pytest.mark.parametrize(
    ("image", "found"),
    [("postgres:16-alpine", ("database", "postgres")), ("mysql", ("database", "mysql")),
     ("docker.io/library/mariadb:11", ("database", "mariadb")),
     ("mongo:7", ("database", "mongo")), ("valkey/valkey:8", ("cache", "valkey")),
     ("memcached:1.6", ("cache", "memcached")), ("envoyproxy/envoy:v1.30", ("proxy", "envoy")),
     ("caddy:2", ("proxy", "caddy")), ("oliver006/redis_exporter", None),
     ("rediscommander/redis-commander", None), ("dpage/pgadmin4", None),
     ("acme/postgresql-backup", None), ("acme/nginxish", None), ("acme/api", None)],
)
def test_software_from_image_names(image: str, found: tuple[str, str] | None) -> None:
    """Whole words of the repository name; tools for a product are not the product."""
    assert software_of(image_words(image)) == found


@pytest.mark.parametrize(
    ("command", "words"),
    [("nginx: master process /usr/sbin/nginx -g daemon off;", ["nginx"]),
     ("/usr/bin/redis-server *:6379", ["redis-server", "redis", "server"]),
     ("python3 -m http.server 4000", ["python3"]), ("", [])],
)
def test_command_words_are_the_program_only(command: str, words: list[str]) -> None:
    """Only the program: arguments (which may hold secrets) are never read."""
    assert command_words(command) == words


def test_listening_ports_and_edges_from_socket_tables() -> None:
    """LISTEN on a reachable address; loopback-only and Docker's DNS listener left out;
    a connection counts from either side."""
    api = [Socket("0.0.0.0", 8000, "0.0.0.0", 0, "LISTEN"),
           Socket("127.0.0.11", 37001, "0.0.0.0", 0, "LISTEN"),
           Socket("127.0.0.1", 9000, "0.0.0.0", 0, "LISTEN"),
           Socket("10.0.0.3", 8000, "10.0.0.2", 51000, "ESTABLISHED"),
           Socket("10.0.0.3", 40000, "10.0.0.4", 5432, "ESTABLISHED")]
    db = [Socket("::", 5432, "::", 0, "LISTEN")]
    listening = {"api": listening_ports(api), "db": listening_ports(db), "proxy": []}
    assert listening == {"api": [8000], "db": [5432], "proxy": []}
    owners = {"10.0.0.2": "proxy", "10.0.0.3": "api", "10.0.0.4": "db"}
    assert service_edges({"api": api, "db": db}, owners, listening) == [
        Edge("api", "db", 5432), Edge("proxy", "api", 8000)]


@pytest.mark.parametrize(
    ("test", "path"),
    [(["CMD", "curl", "-f", "http://localhost:8000/api/health"], "/api/health"),
     (["CMD-SHELL", "wget -qO- http://127.0.0.1:3000/ || exit 1"], "/"),
     (["CMD", "pg_isready"], ""), (None, "")],
)
def test_healthcheck_path(test: list[str] | None, path: str) -> None:
    """The URL path of a Docker healthcheck, if it requests one."""
    assert healthcheck_path(test) == path


def test_nginx_routes_expand_upstreams_and_skip_unknown_variables() -> None:
    """An upstream's servers become routes with their ports; a host that stays a variable
    (set nowhere, e.g. $host) gives none."""
    files = {"/n.conf": """http { upstream app { server api:8000; server api2:8001 backup; }
      server { location /api/ { proxy_pass http://app; }
               location /x/ { proxy_pass http://$http_host; } } }"""}
    assert [(r.location, r.host, r.port) for r in nginx_routes("p", files)] == [
        ("/api/", "api", 8000), ("/api/", "api2", 8001)]


def test_declared_networks_from_compose_else_endpoints() -> None:
    """The compose file's networks first; without one, what Compose attached."""
    endpoints = schemas.to_frame("endpoints", [
        {"container": "a1", "service": "a", "network": "p_front"},
        {"container": "b1", "service": "b", "network": "p_back"}])
    assert declared_networks(None, endpoints) == {"a": {"p_front"}, "b": {"p_back"}}
    assert declared_networks({"services": {"a": {"network_mode": "host"}}}, endpoints) == {
        "a": set()}


def test_traffic_picks_the_backend_that_uses_the_data() -> None:
    """The proxy talks to web and api (its config unreadable); api uses the database."""
    containers = _containers(("s-px-1", "px", "nginx"), ("s-web-1", "web", "acme/web"),
                             ("s-api-1", "api", "acme/api"), ("s-db-1", "db", "mysql:8"))
    frame = infer_roles(containers, listening={"px": [80], "web": [3000], "api": [8000],
                                               "db": [3306]},
                        edges=[Edge("px", "web", 3000), Edge("px", "api", 8000),
                               Edge("api", "db", 3306)])
    assert _roles(frame) == {"px": "proxy", "web": "other", "api": "backend", "db": "database"}
    assert not frame["ambiguous"].any()


def test_nginx_variables_name_the_upstream() -> None:
    """A re-resolving proxy (set $var + resolver) still names its backend."""
    files = {"/n.conf": """http { resolver 127.0.0.11 valid=5s;
      server { set $api_up http://api:8000; set $web_up "http://web:3000";
               location /api/ { proxy_pass $api_up; } location / { proxy_pass $web_up; }
               location /x/ { proxy_pass http://$host_unknown; } } }"""}
    assert [(r.location, r.host, r.port) for r in nginx_routes("p", files)] == [
        ("/api/", "api", 8000), ("/", "web", 3000)]
