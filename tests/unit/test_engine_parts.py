"""Pure parts of the probe engine: job checks, deadlines, shipping, tool output parsing."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from revivadiag.engine import busybox, jobs, ship
from revivadiag.engine.base import Settings, Target, check_results, method_class
from revivadiag.engine.probe import is_local_client
from revivadiag.engine.setns import decode_reply
from revivadiag.errors import ParameterError


@pytest.mark.parametrize(
    ("job", "needle"),
    [({"kind": "ping"}, "job kind"), ({"kind": "tcp", "host": "a"}, "missing port"),
     ({"kind": "dns"}, "missing name")],
)
def test_validate_job(job: jobs.Job, needle: str) -> None:
    """A malformed job is a ParameterError naming the problem."""
    with pytest.raises(ParameterError, match=needle):
        jobs.validate_job(job)


def test_batch_deadline_grows_with_work() -> None:
    """Deadlines cover timeouts x attempts per wave of concurrency, plus serial HTTP work."""
    tcp = {"kind": "tcp", "host": "a", "port": 1, "timeout_s": 0.5, "retries": 1}
    http = {"kind": "http", "url": "http://a/", "samples": 10, "warmup": 0, "timeout_s": 1.0}
    one = jobs.batch_deadline_s([tcp], 64)
    assert one == pytest.approx(jobs.LOOKUP_BUDGET_S + 2 * 0.5 + 1.0 + jobs.DEADLINE_SLACK_S)
    assert jobs.batch_deadline_s([tcp] * 128, 64) > one
    assert jobs.batch_deadline_s([tcp, http], 64) > jobs.batch_deadline_s([http], 64) - 1


@pytest.mark.parametrize(
    ("job", "fields"),
    [
        ({"kind": "dns", "name": "db"}, {"rcode": "ERROR", "answers": []}),
        ({"kind": "tcp", "host": "db", "port": 5432}, {"outcome": "error", "attempts": 0}),
        ({"kind": "http", "url": "http://u:pw@b/"}, {"url": "http://b/", "samples": []}),
        ({"kind": "redis", "host": "r", "port": 6379}, {"ok": False}),
    ],
)
def test_failure_result_shapes(job: jobs.Job, fields: dict[str, object]) -> None:
    """A job that could not run still gets a row of its kind, with the error type."""
    res = jobs.failure_result(job, "CONTAINER_NOT_FOUND", "gone", "setns")
    assert res["error_type"] == "CONTAINER_NOT_FOUND" and res["method"] == "setns"
    assert {k: res[k] for k in fields} == fields


def test_chunk_jobs_respects_the_limit() -> None:
    """Chunks stay under the byte budget and keep every job in order."""
    many: list[dict[str, object]] = [{"kind": "dns", "name": f"name-{i}"} for i in range(100)]
    chunks = ship.chunk_jobs(many, max_bytes=500)
    assert [j for c in chunks for j in c] == many
    assert all(len(json.dumps(c)) <= 500 + 50 for c in chunks) and len(chunks) > 1


def test_shipped_bootstrap_runs_in_a_plain_interpreter() -> None:
    """The python3 -c program carries all of netprobe: it runs with nothing installed, and
    takes its jobs (credentials included) on stdin, not in its argv."""
    job = {"kind": "tcp", "host": "127.0.0.1", "port": 9, "retries": 0, "password": "pw-x9"}
    argv = ship.probe_argv(python=sys.executable)
    assert not any("pw-x9" in a for a in argv)
    out = subprocess.run([*argv[:1], "-I", *argv[1:]], capture_output=True, check=True,
                         timeout=30, input=ship.request_bytes([job], 4, 2)).stdout
    assert json.loads(out)[0]["outcome"] == "refused"
    assert set(ship.package_sources()) >= {"netprobe", "netprobe.dnswire", "netprobe.batch"}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\nNon-authoritative answer:\n"
         "Name:\tweb\nAddress: 172.20.0.2\n\nNon-authoritative answer:\n\n",
         ("NOERROR", ["172.20.0.2"])),
        ("Server:\t\t127.0.0.11\nAddress:\t127.0.0.11:53\n\n"
         "** server can't find nope: NXDOMAIN\n\n** server can't find nope: NXDOMAIN\n",
         ("NXDOMAIN", [])),
        (";; connection timed out; no servers could be reached\n", ("TIMEOUT", [])),
        ("Server:\t127.0.0.11\nAddress:\t127.0.0.11#53\n\nName:\tdb\nAddress: 10.0.0.5\n"
         "Name:\tdb\nAddress: 10.0.0.6\n", ("NOERROR", ["10.0.0.5", "10.0.0.6"])),
    ],
)
def test_parse_nslookup(output: str, expected: tuple[str, list[str]]) -> None:
    """busybox and BIND nslookup outputs; the server's own address is not an answer."""
    assert busybox.parse_nslookup(output) == expected


@pytest.mark.parametrize(
    ("code", "output", "outcome", "error_type"),
    [
        (0, "", "open", ""),
        (1, "nc: can't connect to remote host (172.20.0.2): Connection refused", "refused",
         "CONNECTION_REFUSED"),
        (1, "nc: timed out", "timeout", "TIMEOUT"),
        (1, "nc: bad address 'nosuch'", "unresolvable", "DNS_RESOLUTION_FAILED"),
        (1, "nc: connect to 10.0.0.1 port 80 (tcp) failed: No route to host", "error",
         "CONNECTION_REFUSED"),
    ],
)
def test_parse_nc(code: int, output: str, outcome: str, error_type: str) -> None:
    """nc's exit code and message give the outcome."""
    assert busybox.parse_nc(code, output)[:2] == (outcome, error_type)


def test_nc_argv_rounds_timeout_up() -> None:
    """nc -w takes whole seconds (at least 1)."""
    assert busybox.nc_argv(["busybox"], "10.0.0.2", 80, 0.3) == [
        "busybox", "nc", "-w", "1", "10.0.0.2", "80"]


def test_check_results_and_payloads() -> None:
    """One result per job, else failure rows; a vanished process gives CONTAINER_NOT_FOUND."""
    target = Target("k", "id", "web", 42, [{"kind": "dns", "name": "a"}])
    assert check_results(target, [{"kind": "dns"}], "setns")[0]["method"] == "setns"
    assert "0 results" in check_results(target, [], "setns")[0]["error"]
    gone = decode_reply(target, {"error": "x", "errno": 2}, "setns")
    assert gone[0]["error_type"] == "CONTAINER_NOT_FOUND"
    late = decode_reply(target, {"deadline": True}, "setns")
    assert late[0]["error_type"] == "TIMEOUT" and "deadline" in late[0]["error"]


@pytest.mark.parametrize(
    ("base_url", "local"),
    [("http+docker://localhost", True), ("http://127.0.0.1:2375", True),
     ("https://docker.example:2376", False), ("http+docker://ssh", False)],
)
def test_is_local_client(base_url: str, local: bool) -> None:
    """setns is only possible when the engine runs on this host."""
    assert is_local_client(SimpleNamespace(api=SimpleNamespace(base_url=base_url))) is local


def test_method_registry() -> None:
    """Methods are found by name; an unknown one is a ParameterError; DNS is budgeted."""
    assert method_class("exec").name == "exec"
    with pytest.raises(ParameterError, match="probe method"):
        method_class("telepathy")
    assert Settings(workers=8, dns_budget=32).dns_concurrency == 4


def test_unknown_method_is_a_parameter_error() -> None:
    """ProbeEngine names the methods it knows."""
    from revivadiag.engine.probe import ProbeEngine

    client = SimpleNamespace(api=SimpleNamespace(base_url="http+docker://localhost"))
    with pytest.raises(ParameterError, match="auto, setns, sidecar, exec"):
        ProbeEngine(client, method="carrier-pigeon")


def test_engine_that_does_not_answer(tmp_path: object) -> None:
    """An engine that stops answering is EngineUnreachable naming the address, not a crash."""
    import docker

    from revivadiag.engine.probe import ProbeEngine
    from revivadiag.errors import EngineUnreachable

    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41")
    prober = ProbeEngine(client, method="exec")
    with pytest.raises(EngineUnreachable, match=r"no-engine\.sock"):
        prober.run({"abc": [{"kind": "dns", "name": "x"}]})
