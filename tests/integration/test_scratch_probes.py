"""The probe methods against throw-away containers, one of them FROM scratch with no shell.

Stack (unique names, removed at the end): networks ``a`` and ``b``; on ``a`` a busybox
``httpd`` (``web``, exposes 8080 and an idle 8081), a scratch ``cli`` with no shell that we
probe *from*, a container with python3 (the lab's base image) and a stopped one; on ``b``
another httpd (``far``). Docker drops a -> b traffic, so ``far`` times out rather than refuses.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from revivadiag.collect.containers import parse_containers
from revivadiag.collect.dns import collect_dns
from revivadiag.collect.networks import parse_endpoints
from revivadiag.collect.reachability import collect_reachability
from revivadiag.engine import setns
from revivadiag.engine.probe import ProbeEngine
from revivadiag.engine.sidecar import find_image
from revivadiag.schemas import validate

pytestmark = pytest.mark.integration
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


@dataclass
class Stack:
    """Names, ids and addresses of the throw-away stack."""

    project: str
    ids: dict[str, str]
    ips: dict[str, str]
    python_image: str


def _build_scratch_image(client: docker.DockerClient, tag: str) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(busybox, Path(tmp) / "busybox")
        (Path(tmp) / "Dockerfile").write_text(
            'FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT ["/bin/busybox"]\n')
        client.images.build(path=tmp, tag=tag, rm=True)


def _start(client: docker.DockerClient, project: str, service: str, image: str,
           network: str, command: list[str], ports: list[int], entrypoint: list[str] | None = None,
           start: bool = True) -> str:
    api = client.api
    created = api.create_container(
        image, command=command, entrypoint=entrypoint, name=f"{project}_{service}",
        ports=ports, labels={PROJECT_LABEL: project, SERVICE_LABEL: service},
        host_config=api.create_host_config(network_mode=network),
        networking_config=api.create_networking_config(
            {network: api.create_endpoint_config(aliases=[service])}))
    if start:
        api.start(created["Id"])
    return str(created["Id"])


@pytest.fixture(scope="module")
def stack(engine: docker.DockerClient) -> Iterator[Stack]:
    """Build the image, networks and containers; remove exactly those afterwards."""
    python_image = find_image(engine, None)
    if python_image is None:
        pytest.fail("no revivadiag/base image: run `revivadiag lab build` first")
    project = f"rdp{secrets.token_hex(3)}"
    tag = f"{project}-busybox:latest"
    ids: dict[str, str] = {}
    nets = []
    try:
        _build_scratch_image(engine, tag)
        nets = [engine.networks.create(f"{project}_{n}", driver="bridge") for n in ("a", "b")]
        a, b = (f"{project}_a", f"{project}_b")
        httpd = ["httpd", "-f", "-p", "8080", "-h", "/"]
        ids["web"] = _start(engine, project, "web", tag, a, httpd, [8080, 8081])
        ids["cli"] = _start(engine, project, "cli", tag, a, ["sleep", "3600"], [])
        ids["far"] = _start(engine, project, "far", tag, b, httpd, [8080])
        ids["py"] = _start(engine, project, "py", python_image, a,
                           ["-c", "import time; time.sleep(3600)"], [], entrypoint=["python3"])
        ids["stopped"] = _start(engine, project, "stopped", tag, a, ["true"], [], start=False)
        ips = {}
        for name, cid in ids.items():
            nets_of = engine.api.inspect_container(cid)["NetworkSettings"]["Networks"]
            ips[name] = next(iter(nets_of.values()))["IPAddress"]
        yield Stack(project, ids, ips, python_image)
    finally:
        for cid in ids.values():
            engine.api.remove_container(cid, force=True)
        for net in nets:
            net.remove()
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(tag, force=True)


def matrix(stack: Stack) -> list[dict[str, object]]:
    """The small matrix every method must agree on."""
    return [
        {"kind": "dns", "name": f"{stack.project}_web"},
        {"kind": "dns", "name": "web"},
        {"kind": "dns", "name": f"{stack.project}_far"},
        {"kind": "tcp", "host": "web", "port": 8080},
        {"kind": "tcp", "host": "web", "port": 8081, "retries": 0},
        {"kind": "tcp", "host": stack.ips["far"], "port": 8080, "retries": 0},
        {"kind": "tcp", "host": f"{stack.project}_far", "port": 8080},
    ]


def summary(rows: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [(r.get("rcode") or r.get("outcome"), tuple(r.get("answers") or [r.get("ip")]),
             r["error_type"]) for r in rows]


def test_scratch_image_has_no_shell(engine: docker.DockerClient, stack: Stack) -> None:
    """The probed container really has no shell (so nothing can be exec'd but busybox)."""
    result = engine.containers.get(stack.ids["cli"]).exec_run(["sh", "-c", "true"])
    assert result.exit_code == 126


def test_setns_from_a_scratch_container(engine: docker.DockerClient, stack: Stack) -> None:
    """Resolve, open, refused, dropped and unresolvable, told apart, from a shell-less container."""
    cli = stack.ids["cli"]
    rows = ProbeEngine(engine, method="setns").run({cli: matrix(stack)})[cli]
    web, far = stack.ips["web"], stack.ips["far"]
    assert summary(rows) == [
        ("NOERROR", (web,), ""), ("NOERROR", (web,), ""),
        ("NXDOMAIN", (None,), "DNS_RESOLUTION_FAILED"),
        ("open", (web,), ""), ("refused", (web,), "CONNECTION_REFUSED"),
        ("timeout", (far,), "TIMEOUT"), ("unresolvable", ("",), "DNS_RESOLUTION_FAILED"),
    ]
    assert {r["method"] for r in rows} == {"setns"}
    assert rows[5]["connect_ms"] >= 400 and rows[4]["connect_ms"] < rows[5]["connect_ms"]


@pytest.mark.parametrize("method", ["sidecar", "exec"])
def test_fallbacks_agree_with_setns(engine: docker.DockerClient, stack: Stack, method: str) -> None:
    """sidecar and exec (busybox nc/nslookup here) give setns's outcomes on the same matrix."""
    jobs = {stack.ids["cli"]: matrix(stack)}
    fast = ProbeEngine(engine, method="setns").run(jobs)[stack.ids["cli"]]
    other = ProbeEngine(engine, method=method).run(jobs)[stack.ids["cli"]]
    assert summary(other) == summary(fast)
    assert {r["method"] for r in other} == {method}


def test_exec_runs_netprobe_where_python_exists(engine: docker.DockerClient, stack: Stack) -> None:
    """With python3 in the container, exec runs the full netprobe (HTTP phases included)."""
    jobs = [{"kind": "http", "url": "http://web:8080/", "samples": 3, "warmup": 1},
            {"kind": "tcp", "host": "web", "port": 8081, "retries": 0}]
    http, tcp = ProbeEngine(engine, method="exec").run({stack.ids["py"]: jobs})[stack.ids["py"]]
    assert len(http["samples"]) == 3 and http["method"] == "exec"
    assert tcp["outcome"] == "refused"


@pytest.mark.parametrize("method", ["setns", "sidecar", "exec"])
def test_stopped_and_missing_containers(engine: docker.DockerClient, stack: Stack,
                                        method: str) -> None:
    """A stopped or unknown container yields CONTAINER_NOT_FOUND rows, never an exception."""
    jobs = matrix(stack)[:2]
    out = ProbeEngine(engine, method=method).run({stack.ids["stopped"]: jobs,
                                                  "rdp-no-such-container": jobs})
    for rows in out.values():
        assert [r["error_type"] for r in rows] == ["CONTAINER_NOT_FOUND"] * 2


def test_worker_over_its_deadline_is_killed(engine: docker.DockerClient, stack: Stack,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A setns worker that overruns its deadline is killed; its rows say TIMEOUT."""
    monkeypatch.setattr(setns, "batch_deadline_s", lambda jobs, concurrency: 0.3)
    job = {"kind": "tcp", "host": stack.ips["far"], "port": 8080, "timeout_s": 3, "retries": 0}
    row = ProbeEngine(engine, method="setns").run({stack.ids["cli"]: [job]})[stack.ids["cli"]][0]
    assert row["error_type"] == "TIMEOUT" and "deadline" in row["error"]


def frames(engine: docker.DockerClient, stack: Stack) -> tuple[object, object]:
    inspects = [engine.api.inspect_container(cid) for cid in stack.ids.values()]
    return parse_containers(inspects, project=stack.project), parse_endpoints(inspects,
                                                                              stack.project)


@pytest.mark.parametrize("method", ["setns", "exec"])
def test_collectors_on_the_stack(engine: docker.DockerClient, stack: Stack, method: str) -> None:
    """dns and reachability frames: schema, method column, refused vs dropped, stopped rows."""
    containers, endpoints = frames(engine, stack)
    prober = ProbeEngine(engine, method=method)
    dns = collect_dns(prober, containers, endpoints)
    reach = collect_reachability(prober, containers, endpoints)
    validate("dns", dns)
    validate("reachability", reach)
    cli = f"{stack.project}_cli"
    running = reach[reach.source != f"{stack.project}_stopped"]
    assert set(running.method) == {method} and set(dns[dns.source == cli].method) == {method}

    def one(target: str, port: int) -> dict[str, object]:
        rows = reach[(reach.source == cli) & (reach.target == f"{stack.project}_{target}")
                     & (reach.target_port == port)]
        assert len(rows) == 1
        return dict(rows.iloc[0])

    assert one("web", 8080)["outcome"] == "open"
    assert (one("web", 8081)["outcome"], one("web", 8081)["error_type"]) == (
        "refused", "CONNECTION_REFUSED")
    far = one("far", 8080)
    assert far["outcome"] == "unresolvable"
    assert f"-> {stack.ips['far']}:8080" in str(far["error"]) and "dropped (isolated)" in str(
        far["error"])
    stopped = reach[reach.source == f"{stack.project}_stopped"]
    assert not stopped.empty and set(stopped.error_type) == {"CONTAINER_NOT_FOUND"}
    web_from_cli = dns[(dns.source == cli) & (dns["query"] == "web")].iloc[0]
    assert list(web_from_cli.answers) == [stack.ips["web"]]


def test_carried_over_rows_equal_full_measurement(engine: docker.DockerClient,
                                                  stack: Stack) -> None:
    """What one container per network set measures for the others is what each of them
    finds itself: the default and the full frames agree cell by cell, and say which rows
    were measured where."""
    containers, endpoints = frames(engine, stack)
    with ProbeEngine(engine) as first:
        dns = collect_dns(first, containers, endpoints)
        reach = collect_reachability(first, containers, endpoints)
    with ProbeEngine(engine) as second:
        dns_full = collect_dns(second, containers, endpoints, full=True)
        reach_full = collect_reachability(second, containers, endpoints, full=True)

    def key(frame: object, cols: list[str]) -> list[tuple[object, ...]]:
        return sorted(map(tuple, frame[cols].astype(str).values.tolist()))  # type: ignore[index]

    cols = ["source", "target", "target_port", "outcome", "error_type"]
    assert key(reach_full, cols) == key(reach, cols)
    assert key(dns_full, ["source", "query", "rcode"]) == key(dns, ["source", "query", "rcode"])
    running = reach_full[reach_full.error_type != "CONTAINER_NOT_FOUND"]
    assert not running.empty and (running.measured_on == running.source).all()
    assert not running.inferred.any()
    carried = reach[reach.inferred & (reach.outcome == "open")]
    assert not carried.empty and (carried.measured_on != carried.source).all()
    opened = reach[reach.outcome == "open"]
    assert opened.connect_ms.notna().all() and opened.sweep_connect_ms.notna().all()
