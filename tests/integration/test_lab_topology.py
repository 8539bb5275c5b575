"""Names, labels, networks, published ports and reachability of the two variants."""

from __future__ import annotations

import subprocess

import docker
import pytest

from revivadiag.lab import LabInstance, read_secrets, status

pytestmark = pytest.mark.integration

SERVICES = ("frontend", "backend", "database", "redis")


def nc(container: str, host: str, port: int) -> int:
    """Exit code of ``nc -z -w 2 host port`` run inside ``container`` (0: connected)."""
    proc = subprocess.run(
        ["docker", "exec", container, "nc", "-z", "-w", "2", host, str(port)],
        capture_output=True, timeout=20, check=False,
    )
    return proc.returncode


def network_ip(engine: docker.DockerClient, container: str, network: str) -> str:
    """The container's address on one network."""
    attrs = engine.containers.get(container).attrs
    return str(attrs["NetworkSettings"]["Networks"][network]["IPAddress"])


@pytest.mark.parametrize(
    ("fixture", "names"),
    [("lab_current", "{p}_new_{s}"), ("lab_target", "{p}_{s}")],
)
def test_container_names_and_labels(
    request: pytest.FixtureRequest, engine: docker.DockerClient, fixture: str, names: str
) -> None:
    """Container names, compose service names and io.revivadiag labels follow the contract."""
    lab: LabInstance = request.getfixturevalue(fixture)
    for service in SERVICES:
        container = engine.containers.get(names.format(p=lab.prefix, s=service))
        labels = container.labels
        assert (
            labels["com.docker.compose.project"],
            labels["com.docker.compose.service"],
            labels["io.revivadiag.lab"],
            labels["io.revivadiag.variant"],
            labels["io.revivadiag.profile"],
        ) == (lab.prefix, service, "1", lab.variant, "development")
        assert lab.containers[service] == container.name


def _networks(engine: docker.DockerClient, lab: LabInstance) -> dict[str, set[str]]:
    return {
        lab.containers[s]: set(
            engine.containers.get(lab.containers[s]).attrs["NetworkSettings"]["Networks"]
        )
        for s in SERVICES
    }


def test_current_is_one_flat_network(engine: docker.DockerClient, lab_current: LabInstance) -> None:
    """current: all four containers on <prefix>_network only."""
    flat = {f"{lab_current.prefix}_network"}
    assert _networks(engine, lab_current) == {lab_current.containers[s]: flat for s in SERVICES}


def test_target_splits_networks(engine: docker.DockerClient, lab_target: LabInstance) -> None:
    """target: frontend_net holds frontend+backend, backend_net backend+database, cache_net
    backend+redis."""
    p = lab_target.prefix
    front, back, cache = f"{p}_frontend_net", f"{p}_backend_net", f"{p}_cache_net"
    assert _networks(engine, lab_target) == {
        f"{p}_frontend": {front},
        f"{p}_backend": {front, back, cache},
        f"{p}_database": {back},
        f"{p}_redis": {cache},
    }


def test_current_frontend_reaches_database_and_redis(lab_current: LabInstance) -> None:
    """current (flat network): the frontend container can open PostgreSQL's and Redis's ports."""
    frontend = lab_current.containers["frontend"]
    assert (
        nc(frontend, lab_current.containers["database"], 5432),
        nc(frontend, lab_current.containers["redis"], 6379),
        nc(frontend, lab_current.containers["backend"], 3011),
    ) == (0, 0, 0)


def test_target_frontend_cannot_reach_database_or_redis(
    engine: docker.DockerClient, lab_target: LabInstance
) -> None:
    """target: neither by name nor by address does the frontend reach PostgreSQL or Redis."""
    p = lab_target.prefix
    frontend = lab_target.containers["frontend"]
    db_ip = network_ip(engine, lab_target.containers["database"], f"{p}_backend_net")
    redis_ip = network_ip(engine, lab_target.containers["redis"], f"{p}_cache_net")
    assert nc(frontend, lab_target.containers["backend"], 3011) == 0
    assert nc(frontend, lab_target.containers["database"], 5432) != 0
    assert nc(frontend, db_ip, 5432) != 0
    assert nc(frontend, redis_ip, 6379) != 0


def _published(engine: docker.DockerClient, lab: LabInstance) -> dict[str, list[str]]:
    out = {}
    for service in SERVICES:
        bindings = engine.containers.get(lab.containers[service]).attrs["HostConfig"][
            "PortBindings"
        ] or {}
        out[service] = sorted(
            f"{h['HostIp']}:{h['HostPort']}" for hosts in bindings.values() for h in hosts
        )
    return out


def test_target_production_publishes_only_the_frontend(
    engine: docker.DockerClient, lab_target_production: LabInstance
) -> None:
    """target + production: only the frontend has a host port, on 127.0.0.1."""
    lab = lab_target_production
    assert _published(engine, lab) == {
        "frontend": [f"127.0.0.1:{lab.ports['frontend']}"],
        "backend": [],
        "database": [],
        "redis": [],
    }
    assert set(lab.ports) == {"frontend"}


@pytest.mark.parametrize("fixture", ["lab_current", "lab_target"])
def test_development_publishes_all_four_on_loopback(
    request: pytest.FixtureRequest, engine: docker.DockerClient, fixture: str
) -> None:
    """Development profile (and current always): all four services on 127.0.0.1."""
    lab: LabInstance = request.getfixturevalue(fixture)
    assert _published(engine, lab) == {s: [f"127.0.0.1:{lab.ports[s]}"] for s in SERVICES}


def test_status_table(lab_current: LabInstance) -> None:
    """lab status: one healthy running row per service, with its published port."""
    frame = status(lab_current.prefix)
    rows = {
        r.service: (r.container, r.state, r.health, r.ports) for r in frame.itertuples()
    }
    assert rows["backend"] == (
        lab_current.containers["backend"], "running", "healthy",
        f"127.0.0.1:{lab_current.ports['backend']}->3011/tcp",
    )
    assert sorted(rows) == sorted(SERVICES)


def _env(engine: docker.DockerClient, container: str) -> dict[str, str]:
    pairs = engine.containers.get(container).attrs["Config"]["Env"]
    return dict(p.split("=", 1) for p in pairs)


def test_backend_environment_contract(engine: docker.DockerClient, lab_target: LabInstance) -> None:
    """The backend's variables name the database and Redis containers; secrets match the
    instance's secrets file."""
    env = _env(engine, lab_target.containers["backend"])
    secrets = read_secrets(lab_target.prefix)
    db = lab_target.containers["database"]
    assert env["DATABASE_INTERNAL_HOST"] == db
    assert env["DATABASE_URL"] == (
        f"postgresql://revivatech:{secrets['DATABASE_PASSWORD']}@{db}:5432/revivatech"
    )
    assert env["REDIS_INTERNAL_URL"] == f"redis://{lab_target.containers['redis']}:6379/0"
    assert (env["REDIS_PASSWORD"], env["JWT_SECRET"]) == (
        secrets["REDIS_PASSWORD"], secrets["JWT_SECRET"],
    )


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("lab_current", {"NEXT_PUBLIC_API_URL": "http://localhost:3011",
                         "NEXT_PUBLIC_WEBSOCKET_URL": "ws://localhost:3011"}),
        ("lab_target", {"NEXT_PUBLIC_API_URL": "", "NEXT_PUBLIC_WEBSOCKET_URL": ""}),
    ],
)
def test_frontend_environment_contract(
    request: pytest.FixtureRequest, engine: docker.DockerClient, fixture: str,
    expected: dict[str, str],
) -> None:
    """current bakes localhost:3011 in; target leaves client URLs relative and names the
    backend through BACKEND_INTERNAL_URL."""
    lab: LabInstance = request.getfixturevalue(fixture)
    env = _env(engine, lab.containers["frontend"])
    assert {k: env[k] for k in expected} == expected
    if lab.variant == "target":
        assert env["BACKEND_INTERNAL_URL"] == f"http://{lab.prefix}_backend:3011"
    else:
        assert env["BACKEND_HOST"] == f"{lab.prefix}_new_backend"


def test_secrets_file_is_private(lab_current: LabInstance) -> None:
    """The instance's secrets file is mode 0600 and holds three distinct random values."""
    from revivadiag.lab.state import instance_dir

    path = instance_dir(lab_current.prefix) / "secrets.env"
    values = read_secrets(lab_current.prefix)
    assert (path.stat().st_mode & 0o777, len(set(values.values()))) == (0o600, 3)


def test_postgres_and_redis_need_their_passwords(lab_current: LabInstance) -> None:
    """PostgreSQL (scram) and Redis (requirepass) reject a wrong password on loopback."""
    import psycopg
    import redis

    secrets = read_secrets(lab_current.prefix)
    dsn = "host=127.0.0.1 port={} dbname=revivatech user=revivatech password={} connect_timeout=5"
    with psycopg.connect(dsn.format(lab_current.ports["database"],
                                    secrets["DATABASE_PASSWORD"])) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"users", "configuration_migrations"}
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn.format(lab_current.ports["database"], "wrong"))
    good = redis.Redis(host="127.0.0.1", port=lab_current.ports["redis"],
                       password=secrets["REDIS_PASSWORD"], socket_timeout=5)
    assert good.ping() is True
    good.close()
    bad = redis.Redis(host="127.0.0.1", port=lab_current.ports["redis"], socket_timeout=5)
    with pytest.raises(redis.exceptions.AuthenticationError):
        bad.ping()
    bad.close()
