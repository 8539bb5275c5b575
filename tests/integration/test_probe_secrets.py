"""No secret on a command line, and no root while parsing what a container sends.

Each test runs a probe whose jobs carry a made-up password and which takes ~1.5 s (an HTTP
job to the lab backend's delay endpoint), and looks at the probe *while it runs*: the
sidecar's ``docker inspect`` (command, args, environment), the target container's process
list (``docker top``: what ``/proc/*/cmdline`` holds there), and for setns the host process
that sits in the target's network namespace (its argv, its uid, ``NoNewPrivs``).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from revivadiag.engine.probe import ProbeEngine
from revivadiag.engine.sidecar import LABEL
from revivadiag.lab import LabInstance

DELAY_MS = 1500
NOBODY = 65534


def _jobs(lab: LabInstance, password: str) -> list[dict[str, Any]]:
    slow = {"kind": "http", "url": f"http://backend:3011/api/debug/delay?ms={DELAY_MS}",
            "samples": 1, "warmup": 0, "timeout_s": 5.0, "retries": 0}
    pg = {"kind": "postgres", "host": "database", "port": 5432, "user": "nobody-here",
          "password": password, "timeout_s": 2.0}
    return [slow, pg]


def _while_probing(engine: docker.DockerClient, method: str, container_id: str,
                   jobs: list[dict[str, Any]], look: Callable[[], Any]) -> tuple[list[Any], Any]:
    """Run the probe in a thread; call ``look`` repeatedly while it runs; (looks, results)."""
    out: dict[str, Any] = {}

    def run() -> None:
        with ProbeEngine(engine, method=method) as prober:
            out["results"] = prober.run({container_id: jobs})

    thread = threading.Thread(target=run)
    thread.start()
    seen = []
    deadline = time.monotonic() + 30
    while thread.is_alive() and time.monotonic() < deadline:
        seen.append(look())
        time.sleep(0.1)
    thread.join(timeout=30)
    assert "results" in out, "the probe did not finish"
    return seen, out["results"]


def _check_results(results: Any, container_id: str, method: str) -> None:
    rows = results[container_id]
    assert [r["kind"] for r in rows] == ["http", "postgres"]
    assert {r["method"] for r in rows} == {method}
    assert len(rows[0]["samples"]) == 1 and rows[0]["samples"][0]["status"] == 200
    assert rows[0]["samples"][0]["total_ms"] >= DELAY_MS * 0.9


def test_sidecar_carries_no_secret(engine: docker.DockerClient, lab_target: LabInstance) -> None:
    """The sidecar's inspect output never holds the password, while it runs."""
    password = f"pw-{secrets.token_hex(8)}"
    frontend = engine.containers.get(lab_target.containers["frontend"])

    def look() -> list[str]:
        texts = []
        for c in engine.api.containers(all=True, filters={"label": LABEL}):
            if c["Names"] and c["Names"][0].lstrip("/").startswith(f"rdprobe-{frontend.id[:12]}"):
                try:
                    texts.append(repr(engine.api.inspect_container(c["Id"])))
                except docker.errors.NotFound:
                    continue  # it finished and was removed between the list and the look
        return texts

    seen, results = _while_probing(engine, "sidecar", frontend.id,
                                   _jobs(lab_target, password), look)
    _check_results(results, frontend.id, "sidecar")
    inspected = [t for texts in seen for t in texts]
    assert inspected, "never saw the sidecar running"
    assert not [t for t in inspected if password in t]


def test_exec_probe_leaves_no_secret_in_the_targets_process_list(
        engine: docker.DockerClient, lab_target: LabInstance) -> None:
    """``docker top`` of the target (its processes' full command lines) never holds it."""
    password = f"pw-{secrets.token_hex(8)}"
    frontend = engine.containers.get(lab_target.containers["frontend"])

    def look() -> list[str]:
        return [" ".join(p) for p in frontend.top(ps_args="-eo pid,args")["Processes"]]

    seen, results = _while_probing(engine, "exec", frontend.id, _jobs(lab_target, password), look)
    _check_results(results, frontend.id, "exec")
    lines = [line for snap in seen for line in snap]
    assert any("python3 -c" in line for line in lines), "never saw the probe process"
    assert not [line for line in lines if password in line]


def _netns(pid: int | str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


def _status(pid: str) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@pytest.mark.skipif(os.geteuid() != 0 and os.environ.get("CI") != "true",
                    reason="the setns method needs root")
def test_setns_prober_is_unprivileged_and_has_no_secret_in_argv(
        engine: docker.DockerClient, lab_target: LabInstance) -> None:
    """The host process probing inside the target's netns runs as nobody, no new privileges,
    and its argv holds no job."""
    password = f"pw-{secrets.token_hex(8)}"
    frontend = engine.containers.get(lab_target.containers["frontend"])
    target_ns = _netns(frontend.attrs["State"]["Pid"])
    own = {str(p) for p in [frontend.attrs["State"]["Pid"]]}

    def look() -> list[tuple[str, dict[str, str], bytes]]:
        found = []
        for pid in (p for p in os.listdir("/proc") if p.isdigit() and p not in own):
            if _netns(pid) != target_ns:
                continue
            status = _status(pid)
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if status.get("Name", "").startswith("python"):
                found.append((pid, status, argv))
        return found

    seen, results = _while_probing(engine, "setns", frontend.id, _jobs(lab_target, password),
                                   look)
    _check_results(results, frontend.id, "setns")
    # the container's own processes are not python; what is python in its netns is ours
    probers = [(pid, st, argv) for snap in seen for pid, st, argv in snap
               if "-c" in argv.decode(errors="replace")]
    assert probers, "never saw a prober in the target's network namespace"
    for _pid, status, argv in probers:
        assert status["Uid"].split() == [str(NOBODY)] * 4, status["Uid"]
        assert status["Gid"].split() == [str(NOBODY)] * 4, status["Gid"]
        assert status.get("NoNewPrivs", "").strip() == "1"
        assert status.get("CapEff", "").strip() == "0000000000000000"
        assert password.encode() not in argv
