"""A test-only step kind acting on the real engine, and a script that runs a plan of them.

``NetStep`` creates the networks its spec names (``params["networks"]``, each labelled with
the compose project), so its before-state, undo, classification and drift are real engine
facts. It can be told (through the environment of the process running it, so that a resumed
run does not obey it again) to fail or to SIGKILL its own process at a point:

- ``MIGRUN_FAIL=<step id>``: raise after creating the step's first network;
- ``MIGRUN_KILL=<step id>:<point>``, point ``before`` (intent journalled, nothing created),
  ``between`` (first network created), ``after`` (every network created, no result yet);
- ``MIGRUN_SLEEP=<step id>:<seconds>``: sleep inside the step (to hold the lock).

Run as a script: ``python migrun_netsteps.py ROOT PROJECT ACTION [ID]`` with ACTION ``run``,
``resume``, ``rollback`` or ``rollback-force``; the plan is :func:`test_plan` (three steps).
It prints one JSON line: {"ok": ..., "error": type, "message": ..., "migration_id": ...}.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import docker

from revivadiag.migrate.model import Applied, Context, StepSpec

PROJECT_LABEL = "com.docker.compose.project"
TEST_LABEL = "io.revivadiag.test"


def _maybe(point: str, step_id: str) -> None:
    if os.environ.get("MIGRUN_KILL") == f"{step_id}:{point}":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(30)  # never reached


class NetStep:
    """Creates ``params["networks"]`` (names prefixed with the project)."""

    def __init__(self, spec: StepSpec) -> None:
        self.spec = spec

    def names(self, ctx: Context) -> list[str]:
        return [f"{ctx.project}_{n}" for n in self.spec.params["networks"]]

    def _get(self, client: Any, name: str) -> str | None:
        try:
            return str(client.networks.get(name).id)
        except docker.errors.NotFound:
            return None

    def describe(self, ctx: Context) -> list[str]:
        return [f"docker network create --label {PROJECT_LABEL}={ctx.project} {n}"
                for n in self.names(ctx)]

    def capture(self, ctx: Context) -> dict[str, Any]:
        return {"networks": {n: self._get(ctx.client, n) for n in self.names(ctx)}}

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        return {"remove": sorted(n for n, i in before["networks"].items() if i is None)}

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        sid = self.spec.id
        sleep = os.environ.get("MIGRUN_SLEEP", "")
        if sleep.startswith(f"{sid}:"):
            time.sleep(float(sleep.split(":", 1)[1]))
        _maybe("before", sid)
        made: dict[str, str] = {}
        for i, name in enumerate(n for n, v in before["networks"].items() if v is None):
            made[name] = str(ctx.client.networks.create(
                name, labels={PROJECT_LABEL: ctx.project, TEST_LABEL: "migrun"}).id)
            if i == 0:
                if os.environ.get("MIGRUN_FAIL") == sid:
                    raise RuntimeError(f"told to fail after creating {name}")
                _maybe("between", sid)
        _maybe("after", sid)
        return {"networks": {n: self._get(ctx.client, n) for n in self.names(ctx)}}

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        wanted = [n for n, i in before["networks"].items() if i is None]
        there = [n for n in wanted if self._get(ctx.client, n) is not None]
        if not there:
            return Applied.NOT_APPLIED
        return Applied.APPLIED if len(there) == len(wanted) else Applied.PARTIAL

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        for name in undo["remove"]:
            with contextlib.suppress(docker.errors.NotFound):
                ctx.client.networks.get(name).remove()

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        out = []
        for name, net_id in result["networks"].items():
            live = self._get(ctx.client, name)
            if live is None:
                out.append(f"network {name} is gone")
            elif live != net_id:
                out.append(f"network {name} was replaced ({net_id[:12]} -> {live[:12]})")
        return out


def test_plan(project: str) -> Any:
    """Three steps: one network, then two, then one."""
    from revivadiag.migrate.run import RunPlan

    return RunPlan(name="netsteps", project=project, steps=(
        StepSpec("one", "network.create", {"networks": ["n1"]}),
        StepSpec("two", "network.create", {"networks": ["n2a", "n2b"]}),
        StepSpec("three", "network.create", {"networks": ["n3"]}),
    ), path="netsteps.yml", sha256="sha256:test")


def hooks() -> Any:
    from revivadiag.migrate.run import Hooks

    return Hooks(build=NetStep, mirror=False)


def project_networks(client: Any, project: str) -> dict[str, str]:
    """name -> id of every network labelled with the project."""
    found = client.networks.list(filters={"label": f"{PROJECT_LABEL}={project}"})
    return {n.name: n.id for n in found}


def remove_project_networks(client: Any, project: str) -> None:
    for net in client.networks.list(filters={"label": f"{PROJECT_LABEL}={project}"}):
        if net.name.startswith(project):
            net.remove()


def main(argv: list[str]) -> int:
    from revivadiag.errors import RevivadiagError
    from revivadiag.migrate import run as mr

    root, project, action = argv[0], argv[1], argv[2]
    mid = argv[3] if len(argv) > 3 else None
    client = docker.from_env()
    out: dict[str, Any] = {"ok": True}
    try:
        if action in ("run", "resume"):
            ex = mr.run(test_plan(project), client, hooks(), resume=mid, approve=True, root=root)
            out["migration_id"] = ex.migration_id
        else:
            ex = mr.rollback(str(mid), client, hooks(), force=action == "rollback-force",
                             root=root)
            out["migration_id"] = ex.migration_id
    except RevivadiagError as exc:
        out = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 2


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main(sys.argv[1:]))
