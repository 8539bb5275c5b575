"""Starting, stopping and listing lab instances.

``up`` checks everything before it changes anything (engine, images, host ports), creates
the stack's external networks (the shop's ``<prefix>_edge``), runs ``compose up -d``, waits
until every container with a healthcheck reports *healthy* and every other one (the shop's
worker) is *running*, and returns a :class:`LabInstance` with the measured startup time.
When anything fails after that, what it started is removed (``compose down --volumes`` and
the networks it created) before LabStartError. ``down`` removes the external networks too.
"""

from __future__ import annotations

import errno
import secrets
import socket
import time
from dataclasses import dataclass, field

import docker
import docker.errors
import pandas as pd
import requests.exceptions
from docker.models.containers import Container

from revivadiag import schemas
from revivadiag.engine.client import connect
from revivadiag.errors import LabError, LabStartError, PortInUseError
from revivadiag.lab import state
from revivadiag.lab.compose import run_compose
from revivadiag.lab.config import (
    DEFAULT_PREFIX,
    HOST_BIND,
    LABEL_LAB,
    LABEL_PREFIX,
    LABEL_PROFILE,
    LABEL_VARIANT,
    SEED_STACK,
    SHOP_STACK,
    LabConfig,
    check_prefix,
)
from revivadiag.lab.images import missing_images
from revivadiag.redact import Scrubber
from revivadiag.seed import SERVICE_OF_ROLE

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
DEFAULT_TIMEOUT_S = 90.0
POLL_S = 0.25


@dataclass(frozen=True)
class LabInstance:
    """A running lab: what tests and runbooks need to talk to it.

    ``ports`` maps each *published* service to its host port on 127.0.0.1 (target +
    production publishes only ``frontend``, shop-target only ``proxy``, ``--no-publish``
    nothing); ``containers`` maps service -> container name (as the engine reports it).
    """

    config: LabConfig
    startup_s: float
    containers: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return self.config.prefix

    @property
    def variant(self) -> str:
        return self.config.variant

    @property
    def profile(self) -> str:
        return self.config.profile

    @property
    def networks(self) -> tuple[str, ...]:
        return self.config.networks

    @property
    def services(self) -> tuple[str, ...]:
        return self.config.services

    def url(self, path: str = "/", service: str | None = None) -> str:
        """``http://127.0.0.1:<host port><path>`` of a published service (default: the
        proxy, ``frontend`` in the seed stack and ``proxy`` in the shop)."""
        if service is None:
            service = "proxy" if self.config.stack is SHOP_STACK else SERVICE_OF_ROLE["proxy"]
        return f"http://{HOST_BIND}:{self.ports[service]}{path}"


def port_is_free(port: int, host: str = HOST_BIND) -> bool:
    """True when nothing listens on ``host:port`` (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def unique_prefix(stem: str = "rdt") -> str:
    """A prefix nobody else uses: ``<stem>`` + 8 random hex digits (isolated copies)."""
    return f"{stem}{secrets.token_hex(4)}"


def isolated_config(
    variant: str, profile: str = "development", stem: str = "rdt", publish: bool = True
) -> LabConfig:
    """A config with a unique prefix and free host ports, so it can run beside other labs."""
    stack = LabConfig(variant=variant).stack
    names = list(stack.host_ports)
    ports = dict(zip(names, pick_free_ports(len(names)), strict=True))
    return LabConfig(prefix=unique_prefix(stem), variant=variant, profile=profile, ports=ports,
                     publish=publish)


def pick_free_ports(count: int, host: str = HOST_BIND) -> list[int]:
    """``count`` distinct ports the kernel says are free on ``host`` right now (for isolated
    copies of the lab; another process may still take one before it is used)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def check_ports(config: LabConfig) -> None:
    """PortInUseError for the first published host port already taken."""
    for service, port in config.published_ports.items():
        if not port_is_free(port):
            raise PortInUseError(HOST_BIND, port, service)


def _project_containers(client: docker.DockerClient, prefix: str) -> list[Container]:
    filters = {"label": f"{PROJECT_LABEL}={prefix}"}
    return list(client.containers.list(all=True, filters=filters))


def _health(container: Container) -> str:
    health = container.attrs.get("State", {}).get("Health")
    return str(health.get("Status", "none")) if health else "none"


def _has_healthcheck(container: Container) -> bool:
    test = (container.attrs.get("Config", {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def _wait_healthy(
    client: docker.DockerClient, config: LabConfig, timeout_s: float, fresh: bool = True
) -> dict[str, str]:
    """Poll until every service's container is healthy (running, for one without a
    healthcheck); LabError naming the laggards otherwise. Returns service -> container name.
    On a ``fresh`` start a container that restarted already (restart policy) has failed."""
    deadline = time.monotonic() + timeout_s
    pending: dict[str, str] = {}
    while True:
        containers = _project_containers(client, config.prefix)
        found = {c.labels.get(SERVICE_LABEL, ""): c for c in containers}
        pending = {}
        for service in config.services:
            container = found.get(service)
            if container is None:
                pending[service] = "missing"
            elif container.status in ("exited", "dead", "restarting") or (
                fresh and int(container.attrs.get("RestartCount") or 0)
            ):
                raise LabError(f"{container.name} exited during start-up")
            elif not _has_healthcheck(container):
                if container.status != "running":
                    pending[service] = container.status
            elif _health(container) != "healthy":
                pending[service] = _health(container)
        if not pending:
            return {s: str(found[s].name) for s in config.services}
        if time.monotonic() >= deadline:
            state_text = ", ".join(f"{s}: {h}" for s, h in pending.items())
            raise LabError(f"not healthy within {timeout_s:.0f} s ({state_text})")
        time.sleep(POLL_S)


def _existing_external_networks(client: docker.DockerClient, config: LabConfig) -> list[str]:
    """The instance's external networks that exist already; LabError for one that ``lab up``
    of this prefix did not create (it is neither used nor removed)."""
    existing = []
    for name in config.external_networks:
        same = [n for n in client.networks.list(names=[name]) if n.name == name]
        if not same:
            continue
        if not any((n.attrs.get("Labels") or {}).get(LABEL_PREFIX) == config.prefix
                   for n in same):
            raise LabError(f"network {name!r} exists and was not created by revivadiag lab "
                           "up; remove it or pick another --prefix")
        existing.append(name)
    return existing


def _create_external_networks(client: docker.DockerClient, config: LabConfig) -> list[str]:
    """Create the instance's external networks that do not exist yet; returns their names."""
    existing = set(_existing_external_networks(client, config))
    created = []
    for name in config.external_networks:
        if name not in existing:
            client.networks.create(name, driver="bridge",
                                   labels={LABEL_LAB: "1", LABEL_PREFIX: config.prefix})
            created.append(name)
    return created


def _remove_external_networks(
    client: docker.DockerClient, config: LabConfig, only: list[str] | None = None
) -> None:
    """Remove the external networks ``lab up`` created for this prefix (never another's)."""
    for name in config.external_networks if only is None else only:
        for net in client.networks.list(names=[name]):
            if net.name == name and (net.attrs.get("Labels") or {}).get(LABEL_PREFIX) \
                    == config.prefix:
                try:
                    net.remove()
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as exc:
                    raise LabError(f"could not remove network {name!r}: {exc}") from exc


def _log_tail(client: docker.DockerClient, prefix: str, scrub: Scrubber) -> str:
    parts = []
    for container in _project_containers(client, prefix):
        try:
            logs = container.logs(tail=5).decode("utf-8", "replace").strip()
        except docker.errors.APIError:
            continue
        if logs:
            parts.append(f"--- {container.name}\n{scrub.scrub(logs)}")
    return "\n".join(parts)


def _running_config(client: docker.DockerClient, prefix: str) -> LabConfig | None:
    """The config of the instance already running under ``prefix`` (None when none runs)."""
    if not _project_containers(client, prefix):
        return None
    saved = state.load_config(prefix)
    if saved is None:
        raise LabError(f"containers of project {prefix!r} exist but were not started by "
                       "revivadiag lab up; pick another --prefix")
    return saved


def up(
    config: LabConfig, timeout_s: float = DEFAULT_TIMEOUT_S,
    client: docker.DockerClient | None = None,
) -> LabInstance:
    """Start (or confirm) the instance ``config`` and wait until it is healthy.

    Raises EngineUnreachable, LabError (images missing, another variant running under
    this prefix), PortInUseError (before anything starts) and LabStartError (after
    removing whatever this call started).
    """
    client = client or connect()
    missing = missing_images(client, config.stack)
    if missing:
        raise LabError(f"images missing: {', '.join(missing)}; run `revivadiag lab build` first")
    running = _running_config(client, config.prefix)
    if running is not None and running != config:
        raise LabError(f"lab {config.prefix!r} already runs as {running.variant}/"
                       f"{running.profile} with ports {dict(running.ports)}; "
                       "run `revivadiag lab down` first")
    if running is None:
        check_ports(config)
    _existing_external_networks(client, config)
    previous = state.load_config(config.prefix)
    fresh = previous is None and running is None
    lab_secrets = state.ensure_secrets(config.prefix)
    state.save_config(config)
    started = time.monotonic()
    networks: list[str] = []
    try:
        networks = _create_external_networks(client, config)
        run_compose(config, lab_secrets, "up", "-d", "--no-build", "--remove-orphans")
        containers = _wait_healthy(client, config, timeout_s, fresh=running is None)
    except (LabError, docker.errors.APIError, requests.exceptions.RequestException) as exc:
        tail = _log_tail(client, config.prefix, Scrubber(lab_secrets.values()))
        reason = str(exc)
        if running is None:
            try:
                _remove(config, lab_secrets, fresh=fresh)
                _remove_external_networks(client, config, networks)
            except (LabError, docker.errors.APIError) as cleanup:
                reason += f"; removing what was started also failed: {cleanup}"
            if previous is not None:
                state.save_config(previous)
        raise LabStartError(config.prefix, reason, tail) from exc
    return LabInstance(
        config=config,
        startup_s=time.monotonic() - started,
        containers=containers,
        ports=config.published_ports,
    )


def _remove(config: LabConfig, lab_secrets: dict[str, str], fresh: bool) -> None:
    """Undo a failed start: a fresh instance loses everything (volume and secrets too); one
    that existed before (stopped with ``down`` but not ``--volumes``) keeps its data."""
    args = ["down", "--remove-orphans", "--timeout", "5"]
    if fresh:
        args.insert(1, "--volumes")
    run_compose(config, lab_secrets, *args)
    if fresh:
        state.forget(config.prefix)


def down(
    prefix: str = DEFAULT_PREFIX, volumes: bool = False, client: docker.DockerClient | None = None
) -> bool:
    """Stop and remove the instance's containers and networks (and data volume with
    ``volumes=True``, which also deletes its stored secrets). False when nothing was there."""
    check_prefix(prefix)
    client = client or connect()
    config = state.load_config(prefix)
    if config is None:
        if _project_containers(client, prefix):
            raise LabError(
                f"project {prefix!r} was not started by revivadiag lab up; not touching it"
            )
        return False
    lab_secrets = state.read_secrets(prefix)
    args = ["down", "--remove-orphans", "--timeout", "5"]
    if volumes:
        args.insert(1, "--volumes")
    run_compose(config, lab_secrets, *args)
    _remove_external_networks(client, config)
    if volumes:
        state.forget(prefix)
    return True


def _ports_text(container: Container) -> str:
    bindings = container.attrs.get("HostConfig", {}).get("PortBindings") or {}
    parts = []
    for cport, hosts in sorted(bindings.items()):
        for h in hosts or []:
            parts.append(f"{h.get('HostIp') or '0.0.0.0'}:{h.get('HostPort')}->{cport}")
    return ", ".join(parts)


def status(prefix: str = DEFAULT_PREFIX, client: docker.DockerClient | None = None) -> pd.DataFrame:
    """The ``lab_status`` frame: one row per lab container of ``prefix``."""
    check_prefix(prefix)
    client = client or connect()
    rows = [
        {
            "container": c.name,
            "service": c.labels.get(SERVICE_LABEL, ""),
            "state": c.status,
            "health": _health(c),
            "ports": _ports_text(c),
            "variant": c.labels.get(LABEL_VARIANT, ""),
            "profile": c.labels.get(LABEL_PROFILE, ""),
        }
        for c in _project_containers(client, prefix)
        if c.labels.get(LABEL_LAB) == "1"
    ]
    order = {s: i for i, s in enumerate(
        (*SEED_STACK.host_ports, *SHOP_STACK.host_ports, *SHOP_STACK.services))}
    rows.sort(key=lambda r: order.get(str(r["service"]), 9))
    return schemas.to_frame("lab_status", rows)
