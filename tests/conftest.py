"""Shared fixtures: a real Docker Engine and isolated, real copies of the reference lab.

Fixtures (all session-scoped, started lazily: a lab starts only when a test asks for it):

``engine``
    A connected ``docker.DockerClient``. Without an engine the test is *skipped* locally but
    *fails* under ``CI=true`` (CI must never go green by skipping the real thing).
``lab_images``
    The lab's images, built once (cached by recipe hash: a no-op when up to date); the
    :class:`revivadiag.lab.BuildReport`.
``lab_current``, ``lab_target``, ``lab_target_production``
    A running, healthy :class:`revivadiag.lab.LabInstance` of that variant/profile (current
    and target use the development profile: all four services published). Each has a unique
    prefix ``rdt<8 hex>`` (containers ``rdtXXXX_new_backend`` / ``rdtXXXX_backend``, networks
    ``rdtXXXX_network`` / ``rdtXXXX_frontend_net`` + ``rdtXXXX_backend_net``) and free host
    ports on 127.0.0.1. Useful attributes::

        inst.prefix, inst.variant, inst.profile
        inst.containers["backend"]        # container name
        inst.ports["frontend"]            # host port (only published services are present)
        inst.url("/api/health")           # http://127.0.0.1:<frontend port>/api/health
        inst.networks                     # docker network names
        revivadiag.lab.read_secrets(inst.prefix)   # DATABASE_PASSWORD, REDIS_PASSWORD, JWT_SECRET

    The compose project name is the prefix. At the end of the session each is removed with
    ``down(prefix, volumes=True)`` (containers, networks, data volume, stored secrets).
    They are shared by the whole session: tests must not stop or reconfigure them.
``lab_shop_current``, ``lab_shop_target``, ``lab_shop_unpublished``
    The same for the second stack, shaped like public projects (services ``proxy`` nginx:80,
    ``web`` :3000, ``api`` aiohttp :8000, ``worker`` no port and no healthcheck, ``db``
    PostgreSQL :5432, ``cache`` Redis :6379; Compose's default container names
    ``rdtXXXX_api_1``; no role labels). ``lab_shop_current`` publishes proxy, web, api, db and
    cache on free 127.0.0.1 ports and has one flat network ``rdtXXXX_default``;
    ``lab_shop_target`` publishes only the proxy and has ``rdtXXXX_front`` (proxy, web, api),
    ``_data`` (api, worker, db) and ``_cache`` (api, worker, cache). Both have the external
    network ``rdtXXXX_edge`` (the proxy). ``lab_shop_unpublished`` is shop-current started with
    ``publish=False``: no host port at all (``inst.ports == {}``). Useful attributes::

        inst.containers["api"]            # "rdtXXXX_api_1"
        inst.url("/api/healthz")          # through the proxy (shop-current/-target only)
        read_secrets(inst.prefix)         # DATABASE_PASSWORD, REDIS_PASSWORD, JWT_SECRET
``lab_factory``
    For a test that must break a lab (stop or recreate a container): ``lab_factory("target",
    "production")`` (or ``lab_factory("shop-target", publish=False)``) starts a private
    isolated copy; every copy it started is removed (with volumes) when the test ends. Mark
    such tests ``destructive``.
``new_prefix``
    A fresh unique prefix (``rdt<8 hex>``) for a test that starts or fails to start a lab itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import docker
import pytest

from revivadiag.engine.client import connect
from revivadiag.errors import EngineUnreachable
from revivadiag.lab import BuildReport, LabInstance, build_images, down, up
from revivadiag.lab.lifecycle import isolated_config, unique_prefix

LAB_START_TIMEOUT_S = 120.0


#: Python code that makes a fresh interpreter count the Compose ``config`` commands it runs
#: (in ``calls``), for tests that check whose answer a process used
COUNT_COMPOSE_CALLS = """
from revivadiag.collect import compose_cli

calls = []
_real_run_config = compose_cli._run_config


def _counted(*args, **kwargs):
    calls.append(1)
    return _real_run_config(*args, **kwargs)


compose_cli._run_config = _counted
"""


def in_ci() -> bool:
    """True under CI (CI=true), where a missing engine is a failure, not a skip."""
    return os.environ.get("CI", "").lower() == "true"


def start_isolated_lab(
    variant: str, profile: str = "development", client: docker.DockerClient | None = None,
    publish: bool = True,
) -> LabInstance:
    """Start a fresh copy of the lab with a unique prefix on free host ports."""
    config = isolated_config(variant, profile, publish=publish)
    return up(config, timeout_s=LAB_START_TIMEOUT_S, client=client)


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.DockerClient]:
    """A connected Docker client (skip locally / fail under CI=true without an engine)."""
    try:
        client = connect()
    except EngineUnreachable as exc:
        if in_ci():
            pytest.fail(f"CI=true but no Docker Engine answers: {exc}")
        pytest.skip(f"no Docker Engine: {exc}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def lab_images(engine: docker.DockerClient) -> BuildReport:
    """The lab's images, built if their recipes changed (else a cached no-op)."""
    return build_images(client=engine)


def _lab(
    engine: docker.DockerClient, variant: str, profile: str, publish: bool = True
) -> Iterator[LabInstance]:
    instance = start_isolated_lab(variant, profile, client=engine, publish=publish)
    try:
        yield instance
    finally:
        down(instance.prefix, volumes=True, client=engine)


@pytest.fixture
def new_prefix() -> str:
    """A lab prefix no other test or helper uses."""
    return unique_prefix()


@pytest.fixture
def lab_factory(
    engine: docker.DockerClient, lab_images: BuildReport
) -> Iterator[Callable[..., LabInstance]]:
    """``lab_factory(variant, profile="development", publish=True)`` -> a private
    LabInstance, removed (with its volume and secrets) when the test ends."""
    started: list[LabInstance] = []

    def start(variant: str, profile: str = "development", publish: bool = True) -> LabInstance:
        instance = start_isolated_lab(variant, profile, client=engine, publish=publish)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        down(instance.prefix, volumes=True, client=engine)


@pytest.fixture(scope="session")
def lab_current(engine: docker.DockerClient, lab_images: BuildReport) -> Iterator[LabInstance]:
    """A healthy isolated `current` lab (development profile) for the whole session."""
    yield from _lab(engine, "current", "development")


@pytest.fixture(scope="session")
def lab_target(engine: docker.DockerClient, lab_images: BuildReport) -> Iterator[LabInstance]:
    """A healthy isolated `target` lab (development profile) for the whole session."""
    yield from _lab(engine, "target", "development")


@pytest.fixture(scope="session")
def lab_target_production(
    engine: docker.DockerClient, lab_images: BuildReport
) -> Iterator[LabInstance]:
    """A healthy isolated `target` lab in the production profile (only 3010 published)."""
    yield from _lab(engine, "target", "production")


@pytest.fixture(scope="session")
def lab_shop_current(
    engine: docker.DockerClient, lab_images: BuildReport
) -> Iterator[LabInstance]:
    """A healthy isolated `shop-current` lab (development profile) for the whole session."""
    yield from _lab(engine, "shop-current", "development")


@pytest.fixture(scope="session")
def lab_shop_target(
    engine: docker.DockerClient, lab_images: BuildReport
) -> Iterator[LabInstance]:
    """A healthy isolated `shop-target` lab (development profile: only the proxy published)."""
    yield from _lab(engine, "shop-target", "development")


@pytest.fixture(scope="session")
def lab_shop_unpublished(
    engine: docker.DockerClient, lab_images: BuildReport
) -> Iterator[LabInstance]:
    """A healthy isolated `shop-current` lab started with ``publish=False``: no host port."""
    yield from _lab(engine, "shop-current", "development", publish=False)
