"""Building, starting and failing: idempotent builds, checks before changes, clean-up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import docker
import httpx
import pytest

from revivadiag.errors import LabError, LabStartError, PortInUseError
from revivadiag.lab import BuildReport, LabConfig, LabInstance, build_images, down, up
from revivadiag.lab.compose import run_compose
from revivadiag.lab.images import (
    LABEL_HASH,
    RECIPE_NAMES,
    base_hash,
    base_tag,
    service_hash,
    service_tag,
)
from revivadiag.lab.lifecycle import pick_free_ports
from revivadiag.lab.state import instance_dir, read_secrets

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "revivadiag"]


def leftovers(engine: docker.DockerClient, prefix: str) -> dict[str, list[str]]:
    """Containers, networks and volumes that still carry ``prefix``."""
    label = {"label": f"com.docker.compose.project={prefix}"}
    return {
        "containers": [c.name for c in engine.containers.list(all=True, filters=label)],
        "networks": [n.name for n in engine.networks.list(names=[prefix])
                     if n.name.startswith(f"{prefix}_")],
        "volumes": [v.name for v in engine.volumes.list(filters={"name": prefix})],
    }


NOTHING: dict[str, list[str]] = {"containers": [], "networks": [], "volumes": []}


def test_second_build_rebuilds_nothing(
    engine: docker.DockerClient, lab_images: BuildReport
) -> None:
    """Building again right after a build finds every image up to date."""
    again = build_images(client=engine)
    assert (again.built, len(again.cached)) == ([], 1 + len(RECIPE_NAMES))


def test_service_images_carry_their_recipe_hash(
    engine: docker.DockerClient, lab_images: BuildReport
) -> None:
    """Each service image's label is the hash of its recipe chained to the base's."""
    base = base_hash()
    for service in ("frontend", "backend", "database", "redis"):
        labels = engine.images.get(service_tag(service)).labels
        assert labels[LABEL_HASH] == service_hash(service, base)


def test_cli_build_reports_all_cached(lab_images: BuildReport) -> None:
    """`revivadiag lab build` after a build prints that nothing was built."""
    proc = subprocess.run([*CLI, "lab", "build"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert (proc.returncode, proc.stdout.strip().splitlines()[-1].endswith(
        f"(0 built, {1 + len(RECIPE_NAMES)} cached)")) \
        == (0, True)


def test_port_in_use_fails_before_anything_starts(
    engine: docker.DockerClient, lab_images: BuildReport, new_prefix: str
) -> None:
    """A taken host port raises PortInUseError naming it, and nothing is created."""
    prefix = new_prefix
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        others = pick_free_ports(3)
        config = LabConfig(prefix=prefix, variant="current", ports={
            "frontend": others[0], "backend": port, "database": others[1], "redis": others[2]})
        with pytest.raises(PortInUseError) as info:
            up(config, client=engine)
    assert (info.value.port, info.value.service) == (port, "backend")
    assert (leftovers(engine, prefix), instance_dir(prefix).exists()) == (NOTHING, False)


def test_cli_port_in_use_is_a_clear_error(lab_images: BuildReport, new_prefix: str) -> None:
    """The CLI exits 2 and says which port and service, with the option to change it."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        free = pick_free_ports(3)
        proc = subprocess.run(
            [*CLI, "lab", "up", "--variant", "target", "--prefix", new_prefix,
             "--port", f"frontend={port}", "--port", f"backend={free[0]}",
             "--port", f"database={free[1]}", "--port", f"redis={free[2]}"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert proc.returncode == 2
    assert f"127.0.0.1:{port} for service 'frontend' is already in use" in proc.stderr


def test_failed_up_removes_what_it_started(
    engine: docker.DockerClient, lab_images: BuildReport, new_prefix: str
) -> None:
    """A health timeout raises LabStartError and leaves no container, network, volume or
    secrets file behind."""
    prefix = new_prefix
    ports = dict(zip(("frontend", "backend", "database", "redis"), pick_free_ports(4),
                     strict=True))
    with pytest.raises(LabStartError) as info:
        up(LabConfig(prefix=prefix, variant="target", ports=ports), timeout_s=0.5, client=engine)
    assert "not healthy within" in info.value.reason
    assert (leftovers(engine, prefix), instance_dir(prefix).exists()) == (NOTHING, False)


def test_other_variant_on_a_running_prefix_is_refused(
    engine: docker.DockerClient, lab_current: LabInstance
) -> None:
    """`up` of target on a prefix that runs current is a LabError; current keeps running."""
    before = {c.id for c in engine.containers.list(
        filters={"label": f"com.docker.compose.project={lab_current.prefix}"})}
    with pytest.raises(LabError, match="already runs as current"):
        up(LabConfig(prefix=lab_current.prefix, variant="target", ports=lab_current.config.ports),
           client=engine)
    after = {c.id for c in engine.containers.list(
        filters={"label": f"com.docker.compose.project={lab_current.prefix}"})}
    assert before == after and len(after) == 4


def test_up_again_is_idempotent(engine: docker.DockerClient, lab_current: LabInstance) -> None:
    """`up` with the same config on a running instance keeps its containers."""
    ids = {c.name: c.id for c in engine.containers.list(
        filters={"label": f"com.docker.compose.project={lab_current.prefix}"})}
    again = up(lab_current.config, client=engine)
    now = {c.name: c.id for c in engine.containers.list(
        filters={"label": f"com.docker.compose.project={lab_current.prefix}"})}
    assert (now, again.containers) == (ids, lab_current.containers)


@pytest.fixture(scope="module")
def cli_lab(engine: docker.DockerClient, lab_images: BuildReport) -> Iterator[tuple[str, int]]:
    """A target/production lab started and (at the end) removed through the CLI."""
    prefix, port = f"rdtcli{os.getpid()}", pick_free_ports(1)[0]
    proc = subprocess.run(
        [*CLI, "lab", "up", "--variant", "target", "--profile", "production",
         "--prefix", prefix, "--port", f"frontend={port}"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "healthy in" in proc.stdout
    try:
        yield prefix, port
    finally:
        subprocess.run([*CLI, "lab", "down", "--prefix", prefix, "--volumes"],
                       capture_output=True, timeout=120, check=False)
        assert leftovers(engine, prefix) == NOTHING


def test_cli_status_lists_the_four_services(cli_lab: tuple[str, int]) -> None:
    """`lab status` prints one healthy row per container; only the frontend has a port."""
    prefix, port = cli_lab
    proc = subprocess.run([*CLI, "lab", "status", "--prefix", prefix], capture_output=True,
                          text=True, timeout=60, check=True)
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split() == ["container", "service", "state", "health", "ports"]
    assert sorted(line.split()[:4] for line in lines[1:]) == sorted(
        [f"{prefix}_{s}", s, "running", "healthy"] for s in ("frontend", "backend", "database",
                                                               "redis"))
    assert f"127.0.0.1:{port}->3010/tcp" in proc.stdout
    assert proc.stdout.count("->") == 1


def _recreate_backend(engine: docker.DockerClient, lab: LabInstance) -> tuple[str, str]:
    """Remove the backend, park a placeholder container on its old address, and let compose
    create the backend again (so it gets a new address); return (old, new) address on the
    frontend's network."""
    network = lab.networks[0]
    name = lab.containers["backend"]
    old = engine.containers.get(name).attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    engine.containers.get(name).remove(force=True)
    placeholder = engine.containers.run(
        base_tag(), ["sleep", "600"], name=f"{lab.prefix}_placeholder", network=network,
        detach=True, labels={"io.revivadiag.test": "placeholder"},
    )
    try:
        run_compose(lab.config, read_secrets(lab.prefix), "up", "-d", "--no-deps", "backend")
    finally:
        placeholder.remove(force=True)
    deadline = time.monotonic() + 60
    while True:
        attrs = engine.containers.get(name).attrs
        if attrs["State"].get("Health", {}).get("Status") == "healthy":
            break
        assert time.monotonic() < deadline, "recreated backend never became healthy"
        time.sleep(0.5)
    return old, str(attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


@pytest.mark.destructive
@pytest.mark.slow
@pytest.mark.parametrize("variant", ["current", "target"])
def test_proxy_after_backend_moves(
    engine: docker.DockerClient, lab_factory: Callable[..., LabInstance], variant: str
) -> None:
    """When the backend comes back on a new address, target's proxy follows it within a few
    seconds (re-resolution via 127.0.0.11); current's keeps the stale address (502/504)."""
    lab = lab_factory(variant)
    old, new = _recreate_backend(engine, lab)
    assert old != new, "precondition: the recreated backend got a new address"
    if variant == "target":
        deadline = time.monotonic() + 20
        code = 0
        while code != 200 and time.monotonic() < deadline:
            code = httpx.get(lab.url("/api/health"), timeout=5).status_code
            time.sleep(0.5)
        assert code == 200
    else:
        code = httpx.get(lab.url("/api/health"), timeout=90).status_code
        assert code in (502, 504)


def test_no_engine_is_a_clear_cli_error(new_prefix: str) -> None:
    """With DOCKER_HOST pointing nowhere, `lab up` exits 2 naming the address."""
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    proc = subprocess.run([*CLI, "lab", "up", "--prefix", new_prefix], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "no Docker Engine answers at unix:///nonexistent/docker.sock" in proc.stderr


@pytest.mark.destructive
def test_failed_up_of_a_stopped_instance_keeps_its_data(
    engine: docker.DockerClient, lab_factory: Callable[..., LabInstance]
) -> None:
    """After `down` without --volumes, a failed `up` keeps the data volume and secrets, and a
    later `up` comes back with the same database (the seeded user still logs in)."""
    lab = lab_factory("current")
    down(lab.prefix, client=engine)
    secrets_before = read_secrets(lab.prefix)
    with pytest.raises(LabStartError):
        up(lab.config, timeout_s=0.5, client=engine)
    volumes = sorted(v.name for v in engine.volumes.list(filters={"name": lab.prefix}))
    assert (volumes, read_secrets(lab.prefix)) == (
        [f"{lab.prefix}_db_data", f"{lab.prefix}_redis_data"], secrets_before)
    again = up(lab.config, client=engine)
    login = httpx.post(again.url("/api/auth/login"),
                       json={"email": "test@example.com", "password": "password"}, timeout=5)
    assert login.status_code == 200
