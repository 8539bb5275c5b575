"""Equivalence-class planning of the dns and reachability collectors: what is measured, what
is carried over from an equivalent container, and that full mode measures everything."""

from __future__ import annotations

from typing import Any

import pandas as pd

from revivadiag.collect import dns, reachability
from revivadiag.schemas import to_frame, validate

# p_a, p_b, p_c on "front" only (one class: p_a represents it, p_b stands in when the target
# is p_a); p_api on front + back (a class of its own); p_db on back; p_job stopped on back.
CONTAINERS = to_frame("containers", [
    {"container_id": c * 64, "name": f"p_{s}_1", "service": s,
     "state": "exited" if s == "job" else "running", "exposed_ports": [f"{port}/tcp"]}
    for c, s, port in (("a", "a", 80), ("b", "b", 80), ("c", "c", 80), ("d", "api", 3011),
                       ("e", "db", 5432), ("f", "job", 9000))])


def _ep(service: str, network: str, ip: str, running: bool = True) -> dict[str, Any]:
    name = f"p_{service}_1"
    return {"container": name, "service": service, "network": network, "ipv4": ip,
            "aliases": [service], "dns_names": [name, service] if running else []}


ENDPOINTS = to_frame("endpoints", [
    _ep("a", "front", "10.1.0.2"), _ep("b", "front", "10.1.0.3"), _ep("c", "front", "10.1.0.4"),
    _ep("api", "front", "10.1.0.5"), _ep("api", "back", "10.2.0.5"),
    _ep("db", "back", "10.2.0.6"), _ep("job", "back", "", running=False)])
IPS = {f"p_{s}_1": ip for s, ip in (("a", "10.1.0.2"), ("b", "10.1.0.3"), ("c", "10.1.0.4"),
                                    ("api", "10.1.0.5"), ("db", "10.2.0.6"))}
ID = {f"p_{s}_1": c * 64 for c, s in (("a", "a"), ("b", "b"), ("c", "c"), ("d", "api"),
                                      ("e", "db"), ("f", "job"))}


def view() -> dns.NetworkView:
    return dns.NetworkView.from_frames(CONTAINERS, ENDPOINTS)


def resolver(batches: dict[str, list[dict[str, Any]]], v: dns.NetworkView
             ) -> dict[str, list[dict[str, Any]]]:
    """Answers as Docker would give them: a name resolves where it is visible; connects to
    a project address on a shared network are open (in 0.5 ms under load), else dropped."""
    by_id = {m.container_id: m for m in v.members}
    ip_of = {**{m.service: m.ips for m in v.members}, **{m.name: m.ips for m in v.members}}
    nets_of_ip = {ip: net for m in v.members for net, ip in m.ips.items()}
    out: dict[str, list[dict[str, Any]]] = {}
    for cid, jobs in batches.items():
        src = by_id[cid]
        out[cid] = []
        for job in jobs:
            if not src.running:
                out[cid].append({"kind": job["kind"], "answers": [], "rcode": "ERROR",
                                 "outcome": "error", "error_type": "CONTAINER_NOT_FOUND",
                                 "error": "not running", "method": "setns"})
                continue
            if job["kind"] == "dns":
                known = v.knows(src, job["name"])
                ips = sorted(ip for net, ip in ip_of.get(job["name"], {}).items()
                             if net in src.netkey) if known else []
                out[cid].append({"kind": "dns", "name": job["name"], "answers": ips,
                                 "rcode": "NOERROR" if ips else "NXDOMAIN", "latency_ms": 0.4,
                                 "error_type": "" if ips else "DNS_RESOLUTION_FAILED",
                                 "error": "", "method": "setns"})
                continue
            host = job["host"]
            ip = host if host in nets_of_ip else next(
                (i for net, i in ip_of.get(host, {}).items() if net in src.netkey), "")
            ok = nets_of_ip.get(ip) in src.netkey
            out[cid].append({"kind": "tcp", "host": host, "port": job["port"], "ip": ip,
                             "outcome": "open" if ok else "timeout",
                             "connect_ms": 0.5 if ok else 250.0, "attempts": 1,
                             "error_type": "" if ok else "TIMEOUT", "error": "",
                             "method": "setns",
                             "quiet_ms": [0.2, 0.1, 0.3][:job["quiet_samples"]] if ok else []})
    return out


def dns_frame(full: bool) -> tuple[dns.DnsPlan, pd.DataFrame]:
    v = view()
    plan = dns.plan_dns(v, {}, full)
    results = resolver(plan.batches, v)
    cache = {**dns.shared_answers(plan, results, v), **plan.skipped}
    frame = to_frame("dns", dns.dns_rows(v, plan, results, cache))
    validate("dns", frame)
    return plan, frame


def test_classes_and_stand_ins() -> None:
    """One representative per network set; the second member stands in for connects to it."""
    v = view()
    a, b, c, api = (v.by_name[n] for n in ("p_a_1", "p_b_1", "p_c_1", "p_api_1"))
    assert v.prober(c) is a and v.prober(a) is a and v.prober(api) is api
    assert v.prober(c, full=True) is c
    assert v.connector(c, api) is a and v.connector(c, a) is b and v.connector(b, a) is b
    assert v.connector(a, b) is a and v.connector(c, a, full=True) is c
    assert [m.name for m in v.probers()] == ["p_a_1", "p_b_1", "p_api_1", "p_db_1"]


def test_dns_asks_once_per_network_set_and_says_what_was_carried_over() -> None:
    """p_b and p_c ask nothing: their rows carry p_a's answers, marked inferred."""
    plan, frame = dns_frame(full=False)
    assert ID["p_b_1"] not in plan.batches and ID["p_c_1"] not in plan.batches
    assert ID["p_a_1"] in plan.batches and ID["p_job_1"] in plan.batches  # stopped: NOT_FOUND
    assert len(frame) == 6 * len(view().names)  # no row lost
    c_rows = frame[frame.source == "p_c_1"].set_index("query")
    a_rows = frame[frame.source == "p_a_1"].set_index("query")
    assert set(c_rows.measured_on) == {"p_a_1"} and c_rows.inferred.all()
    assert list(c_rows.loc["b", "answers"]) == ["10.1.0.3"]
    assert (c_rows["rcode"] == a_rows["rcode"]).all()
    local = a_rows[~a_rows.from_cache.astype(bool)]
    assert set(local.measured_on) == {"p_a_1"} and not local.inferred.any()


def test_dns_full_mode_asks_from_every_container() -> None:
    """full=True: every running container asks its own names; only the forwarded (upstream)
    answers are shared, and those rows still say who asked."""
    plan, frame = dns_frame(full=True)
    assert set(plan.batches) == set(ID.values())
    local = frame[~frame.from_cache.astype(bool) & (frame.rcode != dns.NOT_ASKED)]
    assert (local.measured_on == local.source).all() and not local.inferred.any()
    partial_plan, _ = dns_frame(full=False)
    asked = sum(len(j) for j in plan.batches.values())
    assert asked > sum(len(j) for j in partial_plan.batches.values())


def sweep(full: bool) -> tuple[reachability.SweepPlan, pd.DataFrame]:
    v = view()
    plist = reachability.target_ports(CONTAINERS)
    plan = dns.plan_dns(v, {}, full)
    results = resolver(plan.batches, v)
    cache: dict[Any, Any] = {**dns.shared_answers(plan, results, v), **plan.skipped,
                             **dns.known_answers(v, plan, results)}
    names = reachability.unknown_names(v, plist, cache, full)
    cache.update(dns.shared_answers(names, resolver(names.batches, v), v))
    splan = reachability.plan_sweep(v, plist, cache, 0.5, full)
    sres = resolver(splan.batches, v)
    frame = to_frame("reachability", [reachability.cell_row(c, splan, sres, cache)
                                      for c in splan.cells])
    validate("reachability", frame)
    return splan, frame


def test_sweep_connects_once_per_network_set() -> None:
    """p_c's cells carry p_a's result (p_b's when the target is p_a); nothing is lost."""
    plan, frame = sweep(full=False)
    assert len(frame) == 6 * 5  # every source x every other target, one port each
    assert ID["p_c_1"] not in plan.batches
    assert plan.batches[ID["p_b_1"]] and all(j["host"] == "10.1.0.2"
                                             for j in plan.batches[ID["p_b_1"]])
    rows = frame.set_index(["source", "target"])
    c_api, a_api = rows.loc[("p_c_1", "p_api_1")], rows.loc[("p_a_1", "p_api_1")]
    assert (c_api.outcome, c_api.measured_on, bool(c_api.inferred)) == ("open", "p_a_1", True)
    assert (a_api.measured_on, bool(a_api.inferred)) == ("p_a_1", False)
    c_a = rows.loc[("p_c_1", "p_a_1")]
    assert (c_a.outcome, c_a.measured_on, bool(c_a.inferred)) == ("open", "p_b_1", True)
    counts = plan.counts()
    assert counts["carried_over"] == int(frame.inferred.sum()) - counts["lookup_only"] > 0
    c_db = rows.loc[("p_c_1", "p_db_1")]
    assert c_db.outcome == "unresolvable" and "L3 probe p_a_1 -> 10.2.0.6:5432" in c_db.error


def test_full_sweep_measures_every_cell_and_agrees() -> None:
    """full=True: no cell carried over, every running source connects itself (by address
    where its name does not resolve), and the outcomes equal the inferred matrix's."""
    plan, frame = sweep(full=True)
    partial_plan, partial = sweep(full=False)
    counts = plan.counts()
    assert counts["carried_over"] == 0
    lookup_only = [c for c in plan.cells if c.job is None and not c.l3]
    assert len(lookup_only) == counts["lookup_only"] == 5  # the stopped target has no address
    assert {c.target.name for c in lookup_only} == {"p_job_1"}
    assert counts["connects"] > partial_plan.counts()["connects"]
    running = frame[(frame.source != "p_job_1") & (frame.target != "p_job_1")]
    assert (running.measured_on == running.source).all() and not running.inferred.any()
    c_db = frame.set_index(["source", "target"]).loc[("p_c_1", "p_db_1")]
    assert "L3 probe p_c_1 -> 10.2.0.6:5432" in c_db.error
    key = ["source", "target", "target_port", "outcome", "error_type"]
    assert (frame[key].sort_values(key).values.tolist()
            == partial[key].sort_values(key).values.tolist())


def test_open_rows_take_the_uncontended_connect_time() -> None:
    """connect_ms of an open row is the median of the connects repeated one at a time after
    the batch; the sweep's own time is kept apart; L3 probes ask for no repeats."""
    plan, frame = sweep(full=False)
    opened = frame[frame.outcome == "open"]
    assert not opened.empty
    assert set(opened.connect_ms) == {0.2} and set(opened.sweep_connect_ms) == {0.5}
    assert set(frame[frame.outcome != "open"].sweep_connect_ms.dropna()) <= {250.0}
    jobs = [j for jobs in plan.batches.values() for j in jobs]
    l3 = {cid for cid, _, _ in plan.l3_jobs.values()}
    assert l3 and all(plan.batches[cid][i]["quiet_samples"] == 0
                      for cid, i, _ in plan.l3_jobs.values())
    assert {j["quiet_samples"] for j in jobs if j["retries"]} == {reachability.QUIET_SAMPLES}


def test_column_wise_frames_equal_row_by_row_frames() -> None:
    """The frames built from shared base rows are the frames of the full row dicts."""
    v = view()
    plan = dns.plan_dns(v, {})
    results = resolver(plan.batches, v)
    cache: dict[Any, Any] = {**dns.shared_answers(plan, results, v), **plan.skipped,
                             **dns.known_answers(v, plan, results)}
    exp = dns.dns_expansion(v, plan, results, cache)
    assert len(exp.bases) < len(exp.take)
    pd.testing.assert_frame_equal(exp.frame("dns"), to_frame("dns", exp.rows()))
    frame = exp.frame("dns")
    validate("dns", frame)
    assert frame.answers.map(id).is_unique  # no list shared between rows
    splan = reachability.plan_sweep(v, reachability.target_ports(CONTAINERS), cache, 0.5)
    sres = resolver(splan.batches, v)
    sexp = reachability.sweep_expansion(splan, sres, cache)
    pd.testing.assert_frame_equal(sexp.frame("reachability"),
                                  to_frame("reachability", sexp.rows()))


def test_containers_on_no_user_network_are_measured_each_by_itself() -> None:
    """Two containers on the default bridge only (one could be host-mode or share another's
    namespace: the API does not say whose) are never carried over from each other."""
    containers = to_frame("containers", [
        *CONTAINERS.to_dict("records"),
        *({"container_id": c * 64, "name": f"p_{s}_1", "service": s, "state": "running",
           "exposed_ports": []} for c, s in (("g", "solo1"), ("h", "solo2")))])
    endpoints = to_frame("endpoints", [
        *ENDPOINTS.to_dict("records"),
        *({"container": f"p_{s}_1", "service": s, "network": "bridge", "ipv4": ip,
           "aliases": [], "dns_names": []} for s, ip in (("solo1", "172.17.0.2"),
                                                         ("solo2", "172.17.0.3")))])
    v = dns.NetworkView.from_frames(containers, endpoints)
    solo1, solo2 = v.by_name["p_solo1_1"], v.by_name["p_solo2_1"]
    assert v.prober(solo2) is solo2 and v.connector(solo2, v.by_name["p_db_1"]) is solo2
    assert {"p_solo1_1", "p_solo2_1"} <= {m.name for m in v.probers()}
    plan = dns.plan_dns(v, {})
    results = resolver(plan.batches, v)
    cache = {**dns.shared_answers(plan, results, v), **plan.skipped}
    rows = to_frame("dns", dns.dns_rows(v, plan, results, cache))
    for solo in ("p_solo1_1", "p_solo2_1"):
        assert set(rows[rows.source == solo].measured_on) <= {solo, ""}
    sweep_plan = reachability.plan_sweep(v, reachability.target_ports(containers), {}, 0.5)
    l3_by = {cid for cid, _, _ in sweep_plan.l3_jobs.values()}
    assert {solo1.container_id, solo2.container_id} <= l3_by
    assert not [c for c in sweep_plan.cells
                if c.source in (solo1, solo2) and c.via is not None]
