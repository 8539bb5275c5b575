"""Pure parts of the multi-engine and Swarm work: engine specs, options, the swarm-ready
compose variant, the Swarm parsers and probe plan, the findings, frame merging."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from revivadiag.analyze import swarm as sf
from revivadiag.collect import swarm as sw
from revivadiag.collect.snapshot import concat_frames
from revivadiag.engine.engines import is_engine_list, parse_engine_list, resolve_engines
from revivadiag.engine.options import add_engine_options, engines_from_args
from revivadiag.engine.ssh import host_settings
from revivadiag.errors import ParameterError
from revivadiag.lab.swarm import swarm_ready
from revivadiag.schemas import to_frame, validate

STACK = "shop"
NET = {"ID": "n1", "Spec": {"Name": "shop_default"}}


def _task(tid: str, service_id: str, state: str, addr: str, slot: int = 1,
          desired: str = "running") -> dict[str, object]:
    return {"ID": tid, "ServiceID": service_id, "Slot": slot, "NodeID": "node1",
            "DesiredState": desired,
            "Status": {"State": state, "ContainerStatus": {"ContainerID": f"c{tid}"}},
            "NetworksAttachments": [{"Network": NET, "Addresses": [f"{addr}/24"]}]}


def _raw() -> sw.RawSwarm:
    raw = sw.RawSwarm(engine="e1", state="active", node_id="node1", manager=True)
    raw.nodes = [{"ID": "node1", "Description": {"Hostname": "vm1"},
                  "Spec": {"Role": "manager", "Availability": "active"},
                  "Status": {"State": "ready", "Addr": "127.0.0.1"},
                  "ManagerStatus": {"Leader": True}}]
    raw.services = [
        {"ID": "s1", "Spec": {"Name": "shop_api", "Mode": {"Replicated": {"Replicas": 2}},
                              "TaskTemplate": {"ContainerSpec": {"Image": "api:1@sha256:ab"},
                                               "Networks": [{"Target": "n1"}]}},
         "Endpoint": {"Spec": {"Mode": "vip"},
                      "VirtualIPs": [{"NetworkID": "n1", "Addr": "10.0.1.2/24"}]}},
        {"ID": "s2", "Spec": {"Name": "shop_db", "Mode": {"Replicated": {"Replicas": 1}},
                              "EndpointSpec": {"Mode": "dnsrr"},
                              "TaskTemplate": {"ContainerSpec": {"Image": "pg"},
                                               "Networks": [{"Target": "n1"}]}},
         "Endpoint": {"Spec": {"Mode": "dnsrr"}}},
    ]
    raw.tasks = [_task("t1", "s1", "running", "10.0.1.3"),
                 _task("t2", "s1", "starting", "10.0.1.4", slot=2),
                 _task("t3", "s2", "running", "10.0.1.5"),
                 _task("t0", "s2", "shutdown", "10.0.1.9", desired="shutdown")]
    raw.lb = {"n1": {"Name": "shop_default", "Services": {
        "shop_api": {"VIP": "10.0.1.2", "Tasks": [
            {"Name": "shop_api.1.t1", "EndpointIP": "10.0.1.3", "Info": {"Host IP": "1.2.3.4"}}]},
        "shop_db": {"VIP": "<nil>", "Tasks": [
            {"Name": "shop_db.1.t3", "EndpointIP": "10.0.1.5", "Info": {}},
            {"Name": "shop_db.1.t0", "EndpointIP": "10.0.1.9", "Info": {}}]},
        "": {"VIP": "", "Tasks": []}}}}
    return raw


def test_parse_services_replicas_modes_vips() -> None:
    """Desired vs running, endpoint mode, VIPs named by network, digest dropped."""
    frame = sw.parse_services(_raw(), STACK, {"api": [8000], "db": [5432]})
    validate("swarm_services", frame)
    got = frame[["service", "replicas_desired", "replicas_running", "endpoint_mode", "image"]]
    assert got.values.tolist() == [["api", 2, 1, "vip", "api:1"], ["db", 1, 1, "dnsrr", "pg"]]
    assert frame["vips"].tolist() == [["shop_default:10.0.1.2/24"], []]
    assert frame["ports"].tolist() == [["8000"], ["5432"]]


def test_parse_tasks_and_nodes() -> None:
    """Tasks carry their service's short name, node hostname and addresses."""
    raw = _raw()
    tasks = sw.parse_tasks(raw, STACK)
    validate("swarm_tasks", tasks)
    assert tasks[["task_id", "service", "node", "state"]].values.tolist()[0] == [
        "t1", "api", "vm1", "running"]
    assert tasks["addresses"].iloc[0] == ["shop_default:10.0.1.3/24"]
    nodes = sw.parse_nodes(raw)
    validate("swarm_nodes", nodes)
    assert nodes[["hostname", "role", "leader"]].values.tolist() == [["vm1", "manager", True]]


def test_parse_lb_skips_the_network_own_entry_and_nil_vip() -> None:
    """The empty-named entry is the network's own LB; dnsrr's VIP is `<nil>` -> ''."""
    lb = sw.parse_lb(_raw(), STACK)
    validate("swarm_lb", lb)
    assert lb[["service", "vip", "task_id", "endpoint_ip"]].values.tolist() == [
        ["api", "10.0.1.2", "t1", "10.0.1.3"], ["db", "", "t3", "10.0.1.5"],
        ["db", "", "t0", "10.0.1.9"]]


def test_lb_findings_stale_and_missing() -> None:
    """t0 is in the view but shut down (stale); nothing running is missing."""
    raw = _raw()
    found = sf.lb_findings(sw.parse_lb(raw, STACK), sw.parse_tasks(raw, STACK))
    assert [f[0] for f in found] == ["RD-SWM-003"]
    assert "db task t0" in found[0][1]
    # drop t1 from the view: a running task missing from the node's endpoints
    lb = sw.parse_lb(raw, STACK)
    found = sf.lb_findings(lb[lb["task_id"] != "t1"], sw.parse_tasks(raw, STACK))
    assert sorted(f[0] for f in found) == ["RD-SWM-003", "RD-SWM-004"]


def test_probe_plan_and_rows() -> None:
    """One source per service; name, tasks.<name>, VIP and each running task."""
    raw = _raw()
    services = sw.parse_services(raw, STACK, {"api": [8000], "db": [5432]})
    tasks = sw.parse_tasks(raw, STACK)
    containers = to_frame("containers", [
        {"name": "shop_api.1.t1", "container_id": "ct1", "service": "api", "state": "running"},
        {"name": "shop_db.1.t3", "container_id": "ct3", "service": "db", "state": "running"}])
    probes = sw.plan_probes(services, tasks, containers)
    from_api = [(p.kind, p.host, p.port) for p in probes if p.source_service == "api"]
    assert from_api == [("swarm_service", "db", None), ("swarm_tasks", "tasks.db", None),
                        ("task", "10.0.1.5", 5432)]
    from_db = [(p.kind, p.host, p.port) for p in probes if p.source_service == "db"]
    assert from_db == [("swarm_service", "api", None), ("swarm_tasks", "tasks.api", None),
                       ("vip", "10.0.1.2", 8000), ("task", "10.0.1.3", 8000)]
    jobs = sw.probe_jobs(probes, {"shop_api.1.t1": "ct1", "shop_db.1.t3": "ct3"})
    results = {cid: [{"tag": j["tag"], "kind": j["kind"], "method": "setns",
                      "answers": ["10.0.1.2"], "rcode": "NOERROR",
                      "outcome": "timeout" if j.get("host") == "10.0.1.2" else "open"}
                     for j in js] for cid, js in jobs.items()}
    dns, reach = sw.probe_rows(probes, results, "e1")
    validate("dns", dns)
    validate("reachability", reach)
    assert len(dns) == 4 and set(dns["query_kind"]) == {"swarm_service", "swarm_tasks"}
    vip = reach[reach["target_ip"] == "10.0.1.2"].iloc[0]
    assert (vip["target"], vip["target_host"], vip["outcome"]) == ("", "api", "timeout")
    task = reach[reach["target_ip"] == "10.0.1.3"].iloc[0]
    assert (task["target"], task["target_host"]) == ("shop_api.1.t1", "tasks.api")
    found = sf.vip_findings(services, reach, kernel_ipvs=False)
    assert [f[0] for f in found] == ["RD-SWM-001"] and "no IPVS" in found[0][1]
    assert sf.vip_findings(services, reach[reach["target_ip"] != "10.0.1.3"]) == []


def test_mtu_findings() -> None:
    """An overlay of 1450 needs a 1500 path; a 1450 path is too small."""
    nets = to_frame("networks", [{"name": "o", "driver": "overlay"},
                                 {"name": "b", "driver": "bridge"}])
    engines = to_frame("engines", [{"engine": "e1", "host_mtu": 1500, "node_addr": "a"},
                                   {"engine": "e2", "host_mtu": 1450, "node_addr": "b"}])
    found = sf.mtu_findings(nets, engines)
    assert [(f[0], "e2" in f[1]) for f in found] == [("RD-SWM-006", True)]
    assert "driver.mtu=1400" in found[0][1]


def test_swarm_ready_rewrites_names_and_networks() -> None:
    """container_name refs become service names; bridge -> attachable overlay."""
    spec = {"services": {
        "db": {"image": "pg", "container_name": "${P:?}_new_db", "restart": "always",
               "profiles": ["x"]},
        "api": {"image": "a", "build": ".", "depends_on": {"db": {"condition": "service_healthy"}},
                "environment": ["DB_URL=postgres://u:${PW}@${P:?}_new_db:5432/x"]}},
        "networks": {"n": {"name": "${P}_n", "driver": "bridge"}, "e": {"external": True}}}
    out = swarm_ready(spec, "vip", replicas=2)
    assert out["version"] == "3.8"
    assert out["services"]["api"] == {
        "image": "a", "environment": ["DB_URL=postgres://u:${PW}@db:5432/x"],
        "deploy": {"endpoint_mode": "vip", "replicas": 2}}
    assert out["networks"] == {"n": {"name": "${P}_n", "driver": "overlay", "attachable": True},
                               "e": {"external": True}}
    with pytest.raises(ParameterError):
        swarm_ready(spec, "ipvs")


def test_engine_specs_and_options(tmp_path: Path) -> None:
    """Addresses are checked, duplicates dropped, lists parsed; bad input is typed."""
    specs = resolve_engines(["tcp://h:1", "ssh://u:pw@h2", "tcp://h:1"])
    assert [s.label for s in specs] == ["tcp://h:1", "ssh://u:***@h2"]
    assert [s.address for s in parse_engine_list("tcp://a:1,unix:///x.sock")] == [
        "tcp://a:1", "unix:///x.sock"]
    assert (is_engine_list("tcp://a:1"), is_engine_list("prod")) == (False, True)
    with pytest.raises(ParameterError, match="context"):
        parse_engine_list("no-such-context-rdt")
    with pytest.raises(ParameterError):
        resolve_engines(["http://h"])
    parser = argparse.ArgumentParser()
    add_engine_options(parser)
    args = parser.parse_args(["--docker-host", "tcp://a:1", "--docker-host", "unix:///s"])
    assert [s.address for s in engines_from_args(args)] == ["tcp://a:1", "unix:///s"]
    assert engines_from_args(parser.parse_args([])) == []
    with pytest.raises(ParameterError, match="ssh config"):
        engines_from_args(parser.parse_args(["--ssh-config", str(tmp_path / "none")]))


def test_ssh_host_settings_from_config(tmp_path: Path) -> None:
    """An alias resolves to host, port, user, key and known_hosts from the ssh_config."""
    config = tmp_path / "ssh_config"
    config.write_text("Host lab\n  HostName 127.0.0.1\n  Port 2222\n  User ops\n"
                      f"  IdentityFile {tmp_path}/key\n  UserKnownHostsFile {tmp_path}/kh\n")
    got = host_settings("ssh://lab", config)
    assert got["params"] == {"hostname": "127.0.0.1", "port": 2222, "username": "ops",
                             "key_filename": [f"{tmp_path}/key"]}
    assert got["known_hosts"] == [f"{tmp_path}/kh"]


def test_concat_frames_keeps_dtypes_and_engines() -> None:
    """Frames of two engines stack with their dtypes and engine column."""
    a = to_frame("ports", [{"container": "x", "host_port": 1, "engine": "e1"}])
    b = to_frame("ports", [{"container": "x", "host_port": 2, "engine": "e2"}])
    a.attrs["samples"], b.attrs["samples"] = a.copy(), b.copy()  # pandas cannot compare these
    out = concat_frames("ports", [a, to_frame("ports", []), b])
    assert len(out.attrs["samples"]) == 2
    validate("ports", out)
    assert out[["container", "host_port", "engine"]].values.tolist() == [
        ["x", 1, "e1"], ["x", 2, "e2"]]


@pytest.mark.parametrize(("spec", "health", "expected"), [
    ({"order": "start-first", "healthcheck": None, "mounts": []}, "none", ["no healthcheck"]),
    ({"order": "start-first", "healthcheck": None, "mounts": []}, "healthy", []),
    ({"order": "start-first", "healthcheck": True, "mounts": ["volume:pg:/d"]}, "healthy",
     ["mounts volume:pg:/d"]),
    ({"order": "start-first", "healthcheck": False, "mounts": ["tmp:x:/t"]}, "healthy",
     ["no healthcheck"]),
    ({"order": "stop-first", "healthcheck": False, "mounts": ["volume:pg:/d"]}, "none", []),
])
def test_update_order_findings(spec: dict[str, object], health: str,
                               expected: list[str]) -> None:
    """start-first hurts without a healthcheck (the spec's, else the image's as the running
    container shows) or on a shared volume; stop-first never."""
    services = to_frame("swarm_services", [{"service": "db", "update_order": spec["order"],
                                            "healthcheck": spec["healthcheck"],
                                            "mounts": spec["mounts"], "endpoint_mode": "vip"}])
    containers = to_frame("containers", [{"name": "s_db.1.x", "service": "db",
                                          "state": "running", "health": health}])
    found = sf.update_order_findings(services, containers, {"db": "database"})
    assert [f[0] for f in found] == (["RD-SWM-007"] if expected else [])
    for text in expected:
        assert text in found[0][1]
