"""Connecting to a Docker Engine: local socket by default, DOCKER_HOST or an explicit URL.

API version is negotiated (``version="auto"``); docker-py's exceptions become
:class:`~revivadiag.errors.EngineUnreachable` here, at the boundary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import docker
import docker.errors
import requests.exceptions

from revivadiag.errors import EngineUnreachable
from revivadiag.redact import redact_url

DEFAULT_SOCKET = "unix:///var/run/docker.sock"


@dataclass(frozen=True)
class EngineInfo:
    """What we learned about the engine when we connected."""

    address: str
    server_version: str
    api_version: str
    is_local: bool


def engine_address(docker_host: str | None = None) -> str:
    """The address to use: explicit argument, then DOCKER_HOST, then the local socket."""
    return docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def is_local_address(address: str) -> bool:
    """True when the engine runs on this host (so setns into its containers is possible)."""
    parts = urlsplit(address)
    if parts.scheme in ("unix", "npipe", ""):
        return True
    if parts.scheme == "tcp":
        return parts.hostname in ("127.0.0.1", "localhost", "::1")
    return False


def connect(docker_host: str | None = None, timeout_s: float = 10.0,
            max_pool_size: int = 10, ssh_config: Path | None = None) -> docker.DockerClient:
    """A client for the engine at ``docker_host`` (tcp://, ssh://, unix://), version negotiated.

    ``max_pool_size``: requests in flight at most. ssh:// goes over one SSH connection
    (:mod:`revivadiag.engine.ssh`; ``ssh_config`` names its ssh_config file). Raises
    EngineUnreachable naming the address (credentials removed) when the engine does not answer.
    """
    address = engine_address(docker_host)
    try:
        if urlsplit(address).scheme == "ssh":
            from revivadiag.engine.ssh import ssh_client

            client = ssh_client(address, ssh_config, timeout_s, max_pool_size)
        else:
            client = docker.DockerClient(base_url=address, version="auto", timeout=timeout_s,
                                         max_pool_size=max_pool_size)
        if urlsplit(address).scheme in ("unix", "npipe"):
            # no HTTP proxy, netrc or CA bundle applies to a local socket: skip requests'
            # look-up of them in the environment on every call
            client.api.trust_env = False
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError,
            EOFError) as exc:
        raise EngineUnreachable(redact_url(address), _short(exc)) from exc
    except Exception as exc:  # paramiko's SSHException family, imported lazily
        if type(exc).__module__.startswith("paramiko"):
            raise EngineUnreachable(redact_url(address), _short(exc)) from exc
        raise
    return client


def describe(client: docker.DockerClient, address: str | None = None) -> EngineInfo:
    """Version facts of a connected engine."""
    addr = engine_address(address)
    try:
        ver = client.version()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise EngineUnreachable(addr, _short(exc)) from exc
    return EngineInfo(
        address=addr,
        server_version=str(ver.get("Version", "")),
        api_version=str(client.api.api_version),
        is_local=is_local_address(addr),
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def client_address(client: docker.DockerClient) -> str:
    """Where a connected client talks to: ``unix://<socket path>`` for sockets, else its URL."""
    base = str(getattr(client.api, "base_url", "?"))
    try:
        path = getattr(client.api.get_adapter(base), "socket_path", None)
    except (requests.exceptions.InvalidSchema, AttributeError):
        path = None
    return f"unix://{path}" if path else base
