"""What ``revivadiag diagnose`` asks Compose while its kernel boots serves the kernel's
snapshot: on the running lab, a second interpreter (as the kernel is) takes the snapshot
without running Compose, with the same roles as one that asks Compose itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import COUNT_COMPOSE_CALLS
from revivadiag.collect.compose_cli import HANDOFF_ENV
from revivadiag.collect.inventory import read_project
from revivadiag.lab import LabInstance
from revivadiag.runbook.prefetch import ComposePrefetch

pytestmark = pytest.mark.integration

SNAPSHOT = COUNT_COMPOSE_CALLS + textwrap.dedent("""
    import json, sys
    from revivadiag.collect import compose_cli
    from revivadiag.runbook import diagnose as steps

    snap = steps.take_snapshot(steps.resolve(project=sys.argv[1], samples=2))
    roles = snap.roles[["service", "role", "decided_by"]].sort_values("service")
    print(json.dumps({"calls": len(calls), "roles": roles.to_dict("records"),
                      "notes": [n for n in snap.meta.notes if "compose" in n]}))
""")


def snapshot_in_child(prefix: str, env: dict[str, str]) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", SNAPSHOT, prefix], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_the_kernel_snapshot_uses_the_prefetched_answer(lab_current: LabInstance) -> None:
    own = {k: v for k, v in os.environ.items() if k != HANDOFF_ENV}
    asked = snapshot_in_child(lab_current.prefix, own)
    assert asked["calls"] == 1  # without a hand-off the snapshot asks Compose once

    prefetch = ComposePrefetch()
    try:
        prefetch.start(read_project(lab_current.prefix))
        assert prefetch.wait()
        assert prefetch.problem == ""
        assert prefetch.answers == 1
        handed = snapshot_in_child(lab_current.prefix, {**own, **prefetch.kernel_env()})
        assert not prefetch.path.exists()  # taken, then removed by the taker
    finally:
        prefetch.close()
    assert not prefetch.directory.exists()
    assert handed["calls"] == 0
    assert handed["roles"] == asked["roles"]
    assert handed["notes"] == asked["notes"] == []
