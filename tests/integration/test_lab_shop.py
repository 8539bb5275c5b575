"""The second reference stack (shop-current, shop-target) and `lab up --no-publish`, on real
containers: health, the page through the proxy, the API's writes to PostgreSQL and Redis, the
worker's jobs, isolation by network, the external network and alias, and clean-up."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable

import docker
import httpx
import pytest
from docker.models.containers import Container

from revivadiag.errors import LabError, LabStartError
from revivadiag.lab import BuildReport, LabConfig, LabInstance, down, status, up
from revivadiag.lab.config import LABEL_PREFIX
from revivadiag.lab.lifecycle import isolated_config
from revivadiag.lab.state import instance_dir

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "revivadiag"]
SHOP_SERVICES = {"proxy", "web", "api", "worker", "db", "cache"}


def containers_of(engine: docker.DockerClient, prefix: str) -> dict[str, Container]:
    """service -> container of a compose project."""
    found = engine.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={prefix}"})
    return {c.labels["com.docker.compose.service"]: c for c in found}


def sh(engine: docker.DockerClient, container: str, *argv: str, user: str = "") -> tuple[int, str]:
    """Run argv in a container: (exit code, output)."""
    code, out = engine.containers.get(container).exec_run(list(argv), user=user)
    return int(code), out.decode("utf-8", "replace").strip()


def can_connect(engine: docker.DockerClient, source: str, host: str, port: int) -> bool:
    """True when ``source`` opens a TCP connection to host:port within 2 s."""
    code, _ = sh(engine, source, "nc", "-z", "-w", "2", host, str(port))
    return code == 0


def address_on(engine: docker.DockerClient, container: str, network: str) -> str:
    """A container's IPv4 address on one network."""
    nets = engine.containers.get(container).attrs["NetworkSettings"]["Networks"]
    return str(nets[network]["IPAddress"])


def psql_rows(engine: docker.DockerClient, lab: LabInstance, sql: str) -> dict[str, str]:
    """A two-column query in the shop database (as the postgres superuser over the local
    socket) as {first column: second column}."""
    code, out = sh(engine, lab.containers["db"], "psql", "-X", "-tAq", "-F", "\t", "-d", "shop",
                   "-c", sql, user="postgres")
    assert code == 0, out
    return dict(line.split("\t", 1) for line in out.splitlines() if line)


def redis_get(engine: docker.DockerClient, lab: LabInstance, key: str) -> str:
    """A Redis value (redis-cli authenticates with REDISCLI_AUTH from the container's env)."""
    code, out = sh(engine, lab.containers["cache"], "redis-cli", "--no-auth-warning", "GET", key)
    assert code == 0, out
    return out


def wait_job(url: str, job_id: str, timeout_s: float = 20.0) -> dict[str, object]:
    """Poll GET /jobs/<id> until the worker marked it done (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, object] = httpx.get(f"{url}/{job_id}", timeout=5).json()
        if body["status"] == "done" or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


@pytest.fixture(params=["shop-current", "shop-target"])
def shop(request: pytest.FixtureRequest) -> LabInstance:
    """Each shop variant's session lab."""
    fixture = "lab_shop_current" if request.param == "shop-current" else "lab_shop_target"
    instance: LabInstance = request.getfixturevalue(fixture)
    return instance


def test_every_service_is_healthy_or_running(engine: docker.DockerClient, shop: LabInstance
                                             ) -> None:
    """Six containers with Compose's default names; all healthy but the worker, which has no
    healthcheck and runs; the debug profile's `tools` service is not started."""
    found = containers_of(engine, shop.prefix)
    assert set(found) == SHOP_SERVICES
    # Compose v1 (here) names them P_api_1, v2 P-api-1
    assert all(re.fullmatch(rf"{shop.prefix}([_-]){s}\1\d+", c.name) for s, c in found.items())
    assert shop.containers == {s: c.name for s, c in found.items()}
    health = {s: (c.status, c.attrs["State"].get("Health", {}).get("Status", "none"))
              for s, c in found.items()}
    assert health == {**{s: ("running", "healthy") for s in SHOP_SERVICES},
                      "worker": ("running", "none")}
    frame = status(shop.prefix, client=engine)
    assert set(frame["service"]) == SHOP_SERVICES
    assert set(frame["variant"]) == {shop.variant}


def test_no_role_labels_and_no_container_names(engine: docker.DockerClient, shop: LabInstance
                                               ) -> None:
    """Nothing tells the tool a service's role: no revivadiag.role label on any container."""
    for container in containers_of(engine, shop.prefix).values():
        assert not [k for k in container.labels if "role" in k.lower()]


def test_page_through_the_proxy(shop: LabInstance) -> None:
    """The proxy serves the web page; current's script calls http://localhost:8000, target's
    the relative /api."""
    page = httpx.get(shop.url("/"), timeout=5)
    assert page.status_code == 200 and "<h1>shop</h1>" in page.text
    if shop.variant == "shop-current":
        assert 'const API_URL = "http://localhost:8000"' in page.text
    else:
        assert 'const API_URL = "" || "/api"' in page.text
    health = httpx.get(shop.url("/api/healthz"), timeout=5)
    assert health.status_code == 200
    assert health.json()["checks"]["postgres"]["status"] == "ok"


def test_api_writes_to_postgres_and_redis(engine: docker.DockerClient, shop: LabInstance) -> None:
    """POST /api/items through the proxy inserts a row in PostgreSQL and counts in Redis."""
    name = f"item-{time.monotonic_ns()}"
    created = httpx.post(shop.url("/api/items"), json={"name": name}, timeout=5)
    assert created.status_code == 201, created.text
    item = created.json()
    assert psql_rows(engine, shop, "SELECT id, name FROM items")[str(item["id"])] == name
    assert redis_get(engine, shop, "items:last") == name
    assert int(redis_get(engine, shop, "items:created")) == item["created"] >= 1
    listed = httpx.get(shop.url("/api/items"), timeout=5).json()
    assert name in [i["name"] for i in listed["items"]]


def test_bad_item_is_a_400(shop: LabInstance) -> None:
    """The API validates its input."""
    assert httpx.post(shop.url("/api/items"), json={"name": ""}, timeout=5).status_code == 400
    assert httpx.post(shop.url("/api/items"), content=b"[]", timeout=5).status_code == 400


def test_worker_processes_a_job(engine: docker.DockerClient, shop: LabInstance) -> None:
    """A job queued through the API (PostgreSQL row + Redis list) is completed by the worker,
    which writes its result to PostgreSQL."""
    queued = httpx.post(shop.url("/api/jobs"), json={"payload": "one two three"}, timeout=5)
    assert queued.status_code == 202, queued.text
    job_id = str(queued.json()["id"])
    done = wait_job(shop.url("/api/jobs"), job_id)
    assert done["status"] == "done"
    worker = engine.containers.get(shop.containers["worker"])
    assert done["worker"] == worker.attrs["Config"]["Hostname"]
    assert json.loads(str(done["result"]))["words"] == 3
    assert psql_rows(engine, shop, "SELECT id, status FROM jobs")[job_id] == "done"


def test_external_network_and_alias(engine: docker.DockerClient, shop: LabInstance) -> None:
    """`<prefix>_edge` exists, was made by lab up (not Compose) and holds the proxy only; the
    database answers to its alias `postgres`, which the worker uses."""
    edge = engine.networks.get(f"{shop.prefix}_edge")
    labels = edge.attrs.get("Labels") or {}
    assert labels.get(LABEL_PREFIX) == shop.prefix
    assert "com.docker.compose.project" not in labels
    attached = {c["Name"] for c in edge.attrs["Containers"].values()}
    assert attached == {shop.containers["proxy"]}
    db_nets = engine.containers.get(shop.containers["db"]).attrs["NetworkSettings"]["Networks"]
    assert any("postgres" in (n.get("Aliases") or []) for n in db_nets.values())
    assert can_connect(engine, shop.containers["worker"], "postgres", 5432)
    assert set(shop.networks) == {n.name for n in engine.networks.list(names=[shop.prefix])
                                  if n.name.startswith(f"{shop.prefix}_")}


def test_up_again_is_idempotent(engine: docker.DockerClient, lab_shop_target: LabInstance
                                ) -> None:
    """`up` with the same config on a running shop keeps its containers and its external
    network; another variant on the same prefix is refused and changes nothing."""
    lab = lab_shop_target
    ids = {s: c.id for s, c in containers_of(engine, lab.prefix).items()}
    edge = engine.networks.get(f"{lab.prefix}_edge").id
    again = up(lab.config, client=engine)
    assert again.containers == lab.containers
    with pytest.raises(LabError, match="already runs as shop-target"):
        up(LabConfig(prefix=lab.prefix, variant="shop-current", ports=lab.config.ports),
           client=engine)
    assert {s: c.id for s, c in containers_of(engine, lab.prefix).items()} == ids
    assert engine.networks.get(f"{lab.prefix}_edge").id == edge


def test_current_is_one_flat_network(engine: docker.DockerClient,
                                     lab_shop_current: LabInstance) -> None:
    """shop-current's mistakes: the proxy and web reach PostgreSQL and Redis; the data
    services are published on the host."""
    lab = lab_shop_current
    for source in ("proxy", "web"):
        assert can_connect(engine, lab.containers[source], "db", 5432)
        assert can_connect(engine, lab.containers[source], "cache", 6379)
    assert set(lab.ports) == {"proxy", "web", "api", "db", "cache"}
    assert httpx.get(f"http://127.0.0.1:{lab.ports['api']}/healthz", timeout=5).status_code == 200


def test_target_isolates_by_role(engine: docker.DockerClient, lab_shop_target: LabInstance
                                 ) -> None:
    """shop-target: the proxy reaches neither PostgreSQL nor Redis (not by name, not by
    address); web cannot reach PostgreSQL; PostgreSQL and Redis cannot reach each other; api
    and worker reach both."""
    lab = lab_shop_target
    c = lab.containers
    db_ip = address_on(engine, c["db"], f"{lab.prefix}_data")
    cache_ip = address_on(engine, c["cache"], f"{lab.prefix}_cache")
    for source in ("proxy", "web"):
        for host, port in (("db", 5432), (db_ip, 5432), ("cache", 6379), (cache_ip, 6379)):
            assert not can_connect(engine, c[source], host, port), (source, host)
    assert not can_connect(engine, c["db"], cache_ip, 6379)
    assert not can_connect(engine, c["cache"], db_ip, 5432)
    for source in ("api", "worker"):
        assert can_connect(engine, c[source], "db", 5432)
        assert can_connect(engine, c[source], "cache", 6379)
    assert can_connect(engine, c["proxy"], "api", 8000)
    assert can_connect(engine, c["proxy"], "web", 3000)
    assert set(lab.ports) == {"proxy"}
    published = {s: cont.attrs["HostConfig"]["PortBindings"]
                 for s, cont in containers_of(engine, lab.prefix).items()
                 if cont.attrs["HostConfig"]["PortBindings"]}
    assert list(published) == ["proxy"]


def test_unpublished_lab_publishes_nothing(engine: docker.DockerClient,
                                          lab_shop_unpublished: LabInstance) -> None:
    """`publish=False`: no container has a host port, yet every service is up and the proxy
    serves the API inside its network."""
    lab = lab_shop_unpublished
    assert lab.ports == {}
    found = containers_of(engine, lab.prefix)
    assert set(found) == SHOP_SERVICES
    for container in found.values():
        assert not container.attrs["HostConfig"]["PortBindings"]
        assert not any(container.attrs["NetworkSettings"]["Ports"].values())
    code, out = sh(engine, lab.containers["proxy"], "curl", "-fsS", "--max-time", "3",
                   "http://127.0.0.1/api/healthz")
    assert code == 0 and '"status": "ok"' in out


@pytest.mark.destructive
def test_cli_up_status_down_without_ports(
    engine: docker.DockerClient, lab_images: BuildReport, new_prefix: str
) -> None:
    """`lab up --variant shop-current --no-publish --prefix P` prints no published port;
    `lab status` lists six containers without ports; `lab down --volumes` removes every
    container, network (the external one too), volume and the state directory."""
    proc = subprocess.run(
        [*CLI, "lab", "up", "--variant", "shop-current", "--no-publish", "--prefix", new_prefix],
        capture_output=True, text=True, timeout=240, check=False)
    try:
        assert proc.returncode == 0, proc.stderr
        assert "healthy in" in proc.stdout and "published: none" in proc.stdout
        shown = subprocess.run([*CLI, "lab", "status", "--prefix", new_prefix],
                               capture_output=True, text=True, timeout=60, check=False)
        assert shown.returncode == 0 and "->" not in shown.stdout
        assert sum(bool(re.search(rf"{new_prefix}[_-]{s}[_-]1", shown.stdout))
                   for s in SHOP_SERVICES) == 6
    finally:
        gone = subprocess.run([*CLI, "lab", "down", "--prefix", new_prefix, "--volumes"],
                              capture_output=True, text=True, timeout=120, check=False)
    assert gone.returncode == 0, gone.stderr
    assert containers_of(engine, new_prefix) == {}
    assert [n.name for n in engine.networks.list(names=[new_prefix])] == []
    assert [v.name for v in engine.volumes.list(filters={"name": new_prefix})] == []
    assert not instance_dir(new_prefix).exists()


@pytest.mark.destructive
def test_failed_shop_up_removes_what_it_started(
    engine: docker.DockerClient, lab_images: BuildReport
) -> None:
    """A health timeout after Compose ran removes containers, networks (the external one
    too), the volume and the stored state."""
    config = isolated_config("shop-current", publish=False)
    with pytest.raises(LabStartError) as info:
        up(config, timeout_s=0.01, client=engine)
    assert "not healthy within" in info.value.reason
    assert containers_of(engine, config.prefix) == {}
    assert [n.name for n in engine.networks.list(names=[config.prefix])] == []
    assert [v.name for v in engine.volumes.list(filters={"name": config.prefix})] == []
    assert not instance_dir(config.prefix).exists()


def test_foreign_external_network_is_refused(
    engine: docker.DockerClient, lab_images: BuildReport, new_prefix: str
) -> None:
    """A network `<prefix>_edge` that lab up did not create is neither used nor removed: up
    fails before Compose runs and leaves it in place."""
    foreign = engine.networks.create(f"{new_prefix}_edge", driver="bridge")
    try:
        with pytest.raises(LabError, match="was not created by revivadiag") as info:
            up(LabConfig(prefix=new_prefix, variant="shop-target", publish=False), client=engine)
        assert not isinstance(info.value, LabStartError)  # refused before anything started
        assert containers_of(engine, new_prefix) == {}
        assert not instance_dir(new_prefix).exists()
        assert engine.networks.get(foreign.id).name == f"{new_prefix}_edge"
    finally:
        foreign.remove()
        down(new_prefix, volumes=True, client=engine)


@pytest.mark.destructive
def test_seed_variant_without_ports(
    engine: docker.DockerClient, lab_factory: Callable[..., LabInstance]
) -> None:
    """`--no-publish` works on the seed stack too: healthy, nothing on the host."""
    lab = lab_factory("current", publish=False)
    found = containers_of(engine, lab.prefix)
    assert set(found) == {"frontend", "backend", "database", "redis"}
    assert all(not c.attrs["HostConfig"]["PortBindings"] for c in found.values())
    assert lab.ports == {}
