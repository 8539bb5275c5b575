"""Planning and shaping of the probe collectors (dns, reachability, latency): pure functions."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from revivadiag.analyze.kpis import proxy_overhead_kpi
from revivadiag.collect import dns, latency, reachability
from revivadiag.schemas import to_frame, validate

# web and api share "front"; api and db share "back"; job is on "back" too but stopped.
CONTAINERS = to_frame("containers", [
    {"container_id": "a" * 64, "name": "p_web_1", "service": "web", "state": "running",
     "exposed_ports": ["80/tcp"]},
    {"container_id": "b" * 64, "name": "p_api_1", "service": "api", "state": "running",
     "exposed_ports": ["3011/tcp"]},
    {"container_id": "c" * 64, "name": "p_db_1", "service": "db", "state": "running",
     "exposed_ports": ["5432/tcp", "53/udp"]},
    {"container_id": "d" * 64, "name": "p_job_1", "service": "job", "state": "exited",
     "exposed_ports": []},
])
ENDPOINTS = to_frame("endpoints", [
    {"container": "p_web_1", "service": "web", "network": "front", "ipv4": "10.1.0.2",
     "aliases": ["web", "a" * 12], "dns_names": ["p_web_1", "web", "a" * 12]},
    {"container": "p_api_1", "service": "api", "network": "front", "ipv4": "10.1.0.3",
     "aliases": ["api"], "dns_names": ["p_api_1", "api"]},
    {"container": "p_api_1", "service": "api", "network": "back", "ipv4": "10.2.0.3",
     "aliases": ["api", "backend"], "dns_names": ["p_api_1", "api", "backend"]},
    {"container": "p_db_1", "service": "db", "network": "back", "ipv4": "10.2.0.4",
     "aliases": ["db"], "dns_names": ["p_db_1", "db"]},
    {"container": "p_job_1", "service": "job", "network": "back", "ipv4": "",
     "aliases": ["job"], "dns_names": []},
])


def view() -> dns.NetworkView:
    return dns.NetworkView.from_frames(CONTAINERS, ENDPOINTS)


def nxdomain(name: str) -> dict[str, Any]:
    return {"kind": "dns", "name": name, "answers": [], "rcode": "NXDOMAIN", "latency_ms": 3.0,
            "error_type": "DNS_RESOLUTION_FAILED", "error": f"{name}: NXDOMAIN",
            "method": "setns"}


def answer_all(batches: dict[str, list[dict[str, Any]]], table: dict[str, list[str]]
               ) -> dict[str, list[dict[str, Any]]]:
    """Results as Docker's resolver would give them for the names in ``table``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for cid, jobs in batches.items():
        out[cid] = []
        for job in jobs:
            name = str(job.get("name") or job.get("host"))
            if job["kind"] == "dns":
                ips = table.get(name, [])
                res = {"kind": "dns", "name": name, "answers": ips, "method": "setns",
                       "rcode": "NOERROR" if ips else "NXDOMAIN", "latency_ms": 0.5,
                       "error_type": "" if ips else "DNS_RESOLUTION_FAILED", "error": ""}
            else:
                res = {"kind": "tcp", "host": name, "port": job["port"], "method": "setns",
                       "ip": (job.get("prefer_ips") or [name])[0], "outcome": "timeout",
                       "connect_ms": 500.0, "attempts": 1, "error_type": "TIMEOUT",
                       "error": "timed out"}
            out[cid].append(res)
    return out


def test_view_names_and_kinds() -> None:
    """Container names, services and aliases are queried; short ids are not."""
    v = view()
    assert v.names == {"api": "service", "backend": "alias", "db": "service", "job": "service",
                       "p_api_1": "container_name", "p_db_1": "container_name",
                       "p_job_1": "container_name", "p_web_1": "container_name",
                       "web": "service"}
    web, api = v.by_name["p_web_1"], v.by_name["p_api_1"]
    assert v.knows(web, "api") and not v.knows(web, "db") and v.knows(api, "db")
    assert api.netkey == frozenset({"front", "back"})


def test_plan_dns_asks_forwarded_names_once() -> None:
    """Known names per container; a forwarded name once, from the first container that does
    not know it; cached ones never."""
    v = view()
    plan = dns.plan_dns(v, {})
    web_jobs = [j["name"] for j in plan.batches["a" * 64]]
    assert {"p_web_1", "web", "p_api_1", "api"} <= set(web_jobs)
    forwarded = {k[1]: cid for k, (cid, _) in plan.shared.items()}
    assert forwarded == {"backend": "a" * 64, "db": "a" * 64, "job": "a" * 64,
                         "p_db_1": "a" * 64, "p_job_1": "a" * 64,  # unknown on front
                         "web": "c" * 64, "p_web_1": "c" * 64}  # unknown on back
    assert all(k[0] == dns.UPSTREAM for k in plan.shared)
    assert [j["forwarded"] for j in plan.batches["a" * 64] if j["name"] == "db"] == [True]
    assert len(plan.batches["d" * 64]) == len(v.names)  # stopped: the engine answers NOT_FOUND
    cached = {(dns.UPSTREAM, n): nxdomain(n) for n in forwarded}
    assert not dns.plan_dns(v, cached).shared


def test_dns_rows_complete_and_cached() -> None:
    """Every source x name has a row; reused answers say so."""
    v = view()
    plan = dns.plan_dns(v, {})
    table = {"p_web_1": ["10.1.0.2"], "web": ["10.1.0.2"], "p_api_1": ["10.1.0.3"],
             "api": ["10.1.0.3"]}
    results = answer_all(plan.batches, table)
    cache = dns.shared_answers(plan, results, v)
    frame = to_frame("dns", dns.dns_rows(v, plan, results, cache))
    validate("dns", frame)
    assert len(frame) == len(v.members) * len(v.names)
    row = frame[(frame.source == "p_web_1") & (frame["query"] == "db")].iloc[0]
    assert (row.rcode, row.error_type, bool(row.from_cache)) == (
        "NXDOMAIN", "DNS_RESOLUTION_FAILED", False)


def test_target_ports() -> None:
    """TCP exposed ports plus published container ports; UDP is left out."""
    ports = to_frame("ports", [{"container": "p_web_1", "container_port": 8443,
                                "protocol": "tcp", "host_ip": "127.0.0.1", "host_port": 8443}])
    got = reachability.target_ports(CONTAINERS, ports)
    assert got == {"p_web_1": [80, 8443], "p_api_1": [3011], "p_db_1": [5432], "p_job_1": []}


def test_sweep_plan_and_rows() -> None:
    """By name where Docker knows it; else unresolvable plus one L3 probe per network pair."""
    v = view()
    plist = reachability.target_ports(CONTAINERS)
    names = reachability.unknown_names(v, plist, {})
    cache = dns.shared_answers(names, answer_all(names.batches, {}), v)
    assert (dns.UPSTREAM, "db") in cache
    plan = reachability.plan_sweep(v, plist, cache, 0.5)
    web_jobs = plan.batches["a" * 64]
    by_name = [j for j in web_jobs if j["host"] == "api"]
    assert by_name == [reachability.tcp_job("api", 3011, 0.5, ["10.1.0.3"])]
    l3 = [j for j in web_jobs if j["host"] == "10.2.0.4"]
    assert len(l3) == 1 and l3[0]["retries"] == 0
    results = answer_all(plan.batches, {})
    frame = to_frame("reachability", [reachability.cell_row(c, plan, results, cache)
                                      for c in plan.cells])
    validate("reachability", frame)
    row = frame[(frame.source == "p_web_1") & (frame.target == "p_db_1")].iloc[0]
    assert (row.outcome, row.error_type, row.attempts) == ("unresolvable",
                                                          "DNS_RESOLUTION_FAILED", 0)
    assert "L3 probe p_web_1 -> 10.2.0.4:5432 (front -> back): timeout, dropped" in row.error
    assert set(frame.source) == {"p_web_1", "p_api_1", "p_db_1", "p_job_1"}


def test_unknown_name_answered_outside_the_project_is_not_probed() -> None:
    """A forwarded name that resolves to a foreign address is never connected to."""
    v = view()
    plist = reachability.target_ports(CONTAINERS)
    cache = {(dns.UPSTREAM, "db"): {**nxdomain("db"), "answers": ["93.184.216.34"],
                                    "rcode": "NOERROR", "error_type": ""}}
    plan = reachability.plan_sweep(v, plist, cache, 0.5)
    hosts = {j["host"] for jobs in plan.batches.values() for j in jobs}
    assert "93.184.216.34" not in hosts
    cell = next(c for c in plan.cells if c.source.name == "p_web_1" and c.target.name == "p_db_1")
    row = reachability.cell_row(cell, plan, answer_all(plan.batches, {}), cache)
    assert row["outcome"] == "error" and "not a project address" in row["error"]


SAMPLES = pd.DataFrame({
    "path": ["direct"] * 4 + ["proxy"] * 4, "source": ["f"] * 8, "url": ["d"] * 4 + ["p"] * 4,
    "sample": list(range(4)) * 2, "dns_ms": [0.1] * 8, "connect_ms": [0.2] * 8,
    "first_byte_ms": [1.0, 2.0, 3.0, None, 3.0, 4.0, 5.0, 6.0],
    "total_ms": [1.1, 2.1, 3.1, None, 3.1, 4.1, 5.1, 6.1],
    "status": [200, 200, 200, None, 200, 200, 200, 200], "method": ["setns"] * 8,
    "error_type": ["", "", "", "TIMEOUT", "", "", "", ""], "error": [""] * 8,
})


def test_summarize_samples() -> None:
    """Percentiles of the good samples per path and phase; failures counted apart."""
    frame = latency.summarize_samples(SAMPLES)
    validate("latency", frame)
    total = frame[(frame.path == "direct") & (frame.phase == "total")].iloc[0]
    assert (total.samples, total.errors, total.error_type) == (3, 1, "TIMEOUT")
    assert total.p50_ms == pytest.approx(2.1)
    assert proxy_overhead_kpi(frame)["value"] == pytest.approx(4.6 - 2.1)


def test_latency_plan() -> None:
    """Direct by service name, proxy on loopback, host paths only for published ports; the
    proxy and backend are whoever holds the roles, on their learned ports and paths."""
    from revivadiag.collect.roles import Roles

    containers = to_frame("containers", [
        {"container_id": "f" * 64, "name": "p-edge-1", "service": "edge",
         "state": "running", "exposed_ports": ["80/tcp"]},
        {"container_id": "b" * 64, "name": "p-api-1", "service": "api",
         "state": "running", "exposed_ports": ["9999/tcp"]}])
    ports = to_frame("ports", [{"container": "p-edge-1", "container_port": 80,
                                "protocol": "tcp", "host_ip": "127.0.0.1", "host_port": 23010}])
    roles = Roles.from_rows([
        {"service": "edge", "role": "proxy", "port": 80, "http_path": "/api/health"},
        {"service": "api", "role": "backend", "port": 8000, "http_path": "/health"}])
    paths = latency.plan_paths(containers, roles)
    cid, inside, host = latency.plan_probes(containers, ports, 5, 1, paths, False)
    assert cid == "f" * 64
    assert [(p.path, p.url) for p in inside] == [
        ("direct", "http://api:8000/health"), ("proxy", "http://127.0.0.1:80/api/health")]
    assert [(p.path, p.source, p.url) for p in host] == [
        ("proxy", "host", "http://127.0.0.1:23010/api/health")]
    assert inside[1].job["via_proxy"] and not inside[0].job["via_proxy"]


def test_latency_without_a_proxy_is_measured_from_the_backend() -> None:
    """No proxy role: the direct path from the backend's own namespace, no proxy path."""
    from revivadiag.collect.roles import Roles

    roles = Roles.from_rows([{"service": "api", "role": "backend", "port": 3011},
                             {"service": "db", "role": "database", "port": 5432}])
    paths = latency.plan_paths(CONTAINERS, roles)
    cid, inside, host = latency.plan_probes(CONTAINERS, None, 5, 1, paths, False)
    assert cid == "b" * 64 and host == []
    assert [(p.path, p.url) for p in inside] == [("direct", "http://api:3011/")]


def test_latency_needs_a_backend() -> None:
    """Without a backend role, latency says which role is missing."""
    from revivadiag.collect.roles import Roles
    from revivadiag.errors import ServiceNotFound

    with pytest.raises(ServiceNotFound, match="backend"):
        latency.plan_paths(CONTAINERS, Roles.from_rows([{"service": "web", "role": "proxy"}]))


def test_forwarded_queries_go_first() -> None:
    """Containers that ask forwarded names run in the first wave."""
    containers = to_frame("containers", [
        {"container_id": f"{i}" * 64, "name": f"p_s{i}_1", "service": f"s{i}",
         "state": "running", "exposed_ports": []} for i in range(1, 7)])
    endpoints = to_frame("endpoints", [
        {"container": f"p_s{i}_1", "service": f"s{i}", "network": "n1" if i <= 3 else "n2",
         "ipv4": f"10.0.0.{i}", "aliases": [f"s{i}"], "dns_names": [f"p_s{i}_1", f"s{i}"]}
        for i in range(1, 7)])
    v = dns.NetworkView.from_frames(containers, endpoints)
    plan = dns.plan_dns(v, {})
    askers = {cid for cid, _ in plan.shared.values()}
    assert askers == {"1" * 64, "4" * 64}  # n2's names from s1, n1's from s4
    assert len(plan.shared) == 12
    assert set(list(plan.ordered())[:2]) == askers


def test_forwarded_lookups_stay_within_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the budget a forwarded name is not asked: its rows say NOT_ASKED, method api,
    and the reachability sweep reports the pair unresolvable without asking again."""
    monkeypatch.setattr(dns, "FORWARDED_BUDGET", 3)
    v = view()
    plan = dns.plan_dns(v, {})
    assert len(plan.shared) == 3
    assert len(plan.skipped) == 4  # seven names are forwarded in all (see above)
    assert set(plan.shared).isdisjoint(plan.skipped)
    # services are asked first: they are the names a misconfigured client would use
    assert {k[1] for k in plan.shared} == {"db", "job", "web"}
    results = answer_all(plan.batches, {})
    cache = {**dns.shared_answers(plan, results, v), **plan.skipped}
    frame = to_frame("dns", dns.dns_rows(v, plan, results, cache))
    validate("dns", frame)
    assert len(frame) == len(v.members) * len(v.names)
    skipped = frame[frame.rcode == dns.NOT_ASKED]
    assert set(skipped["query"]) == {"backend", "p_db_1", "p_job_1", "p_web_1"}
    assert set(skipped["method"]) == {"api"}
    assert dns.forwarded_budget(cache) == 0
    assert not reachability.unknown_names(v, {"p_db_1": [5432]}, cache).shared


def test_error_statuses_are_failed_samples_not_latency() -> None:
    """A 429 from a rate-limiting proxy or a 502 is a failed sample: it leaves the
    percentiles and the proxy overhead, and a 502 through the proxy is a PROXY_ERROR."""
    probe = latency.Probe("proxy", "f", "http://127.0.0.1:3010/api/health", {})
    result = {"method": "setns", "samples": [
        {"dns_ms": 0.0, "connect_ms": 0.1, "first_byte_ms": 2.0, "total_ms": 2.1, "status": 200},
        {"dns_ms": 0.0, "connect_ms": 0.1, "first_byte_ms": 0.3, "total_ms": 0.4, "status": 429},
        {"dns_ms": 0.0, "connect_ms": 0.1, "first_byte_ms": 0.5, "total_ms": 0.6, "status": 502},
    ]}
    rows = pd.DataFrame(latency.sample_rows(probe, result))
    assert list(rows["error"]) == ["", "HTTP 429", "HTTP 502"]
    assert list(rows["error_type"]) == ["", "", "PROXY_ERROR"]
    total = latency.summarize_samples(rows).query("phase == 'total'").iloc[0]
    assert (total.samples, total.errors, total.error_type) == (1, 2, "PROXY_ERROR")
    assert total.p50_ms == pytest.approx(2.1)


def test_learned_paths_reach_the_backend_through_the_proxy() -> None:
    """The proxy answers /healthz itself and rewrites /api/x to /x: the proxy path is tried
    under the backend's route only, so it measures the backend."""
    direct, proxy = latency.path_candidates("/healthz", "/api/")
    assert "/healthz" not in proxy
    answered_direct = {"/healthz": True, "/health": False, "/api/health": False, "/": False}
    answered_proxy = {"/api/healthz": True, "/api/health": False, "/api/": False}
    assert latency.choose_paths(direct, proxy, answered_direct, answered_proxy) == (
        "/healthz", "/api/healthz")
