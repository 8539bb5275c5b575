"""Reaching an engine over ``ssh://``: one SSH connection per engine, many channels on it.

docker-py's ``use_ssh_client=True`` starts a new ``ssh`` process — a new TCP connection and
login — for every request (docker/docker-py#2966), which sshd's ``MaxStartups`` throttles as
soon as requests run in parallel. Its paramiko path keeps one transport, but reads only
``~/.ssh/config`` and the system's known hosts. :class:`SSHAdapter` is that paramiko path
with the configuration named explicitly: one paramiko transport per engine, each pooled HTTP
connection a channel on it running ``docker system dial-stdio`` (what the docker CLI runs), at
most ``max_pool_size`` of them (keep it under sshd's ``MaxSessions``, 10 by default).

Host keys are checked (``RejectPolicy``): the host must be in the known_hosts file the
ssh_config names (``UserKnownHostsFile``) or in ``~/.ssh/known_hosts``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import docker
import docker.transport
import paramiko

DEFAULT_CONFIG = Path("~/.ssh/config")


def host_settings(url: str, config_file: Path | None = None) -> dict[str, Any]:
    """paramiko ``connect`` keywords for ``ssh://[user@]host[:port]`` and the known_hosts
    files to trust, from ``config_file`` (default ``~/.ssh/config`` when it exists).

    >>> host_settings("ssh://bob@example:2222", Path("/nonexistent"))["params"]
    {'hostname': 'example', 'port': 2222, 'username': 'bob'}
    """
    parts = urlsplit(url)
    params: dict[str, Any] = {"hostname": parts.hostname, "port": parts.port,
                              "username": parts.username}
    known: list[str] = []
    env = os.environ.get("REVIVADIAG_SSH_CONFIG")
    path = (config_file or (Path(env) if env else DEFAULT_CONFIG)).expanduser()
    if path.is_file():
        conf = paramiko.SSHConfig.from_path(str(path))
        host = conf.lookup(parts.hostname or "")
        if "hostname" in host:
            params["hostname"] = host["hostname"]
        if parts.port is None and "port" in host:
            params["port"] = int(host["port"])
        if parts.username is None and "user" in host:
            params["username"] = host["user"]
        if "identityfile" in host:
            params["key_filename"] = [os.path.expanduser(p) for p in host["identityfile"]]
        if "proxycommand" in host:
            params["sock"] = paramiko.ProxyCommand(host["proxycommand"])
        for item in host.get("userknownhostsfile", "").split():
            known.append(os.path.expanduser(item))
    return {"params": params, "known_hosts": known}


class SSHAdapter(docker.transport.SSHHTTPAdapter):  # type: ignore[misc]
    """docker-py's paramiko adapter with an explicit ssh_config (see the module docstring)."""

    def __init__(self, base_url: str, config_file: Path | None, timeout: float,
                 max_pool_size: int) -> None:
        self._config_file = config_file
        super().__init__(base_url, timeout=timeout, pool_connections=1,
                         max_pool_size=max_pool_size, shell_out=False)

    def _create_paramiko_client(self, base_url: str) -> None:
        logging.getLogger("paramiko").setLevel(logging.WARNING)
        settings = host_settings(base_url, self._config_file)
        self.ssh_params = {k: v for k, v in settings["params"].items() if v is not None}
        self.ssh_params.setdefault("timeout", 10)
        self.ssh_params["allow_agent"] = "key_filename" not in self.ssh_params
        self.ssh_client = paramiko.SSHClient()
        self.ssh_client.load_system_host_keys()
        user_known = Path("~/.ssh/known_hosts").expanduser()
        for path in [*settings["known_hosts"], str(user_known)]:
            if Path(path).is_file():
                self.ssh_client.load_host_keys(path)
        self.ssh_client.set_missing_host_key_policy(paramiko.RejectPolicy())


def ssh_client(url: str, config_file: Path | None = None, timeout_s: float = 10.0,
               budget: int = 8) -> docker.DockerClient:
    """A DockerClient for ``url`` over one SSH connection with at most ``budget`` channels.

    The API version is negotiated through that connection. paramiko's and docker-py's
    exceptions pass through (the caller maps them).
    """
    # a fixed version keeps the constructor from calling the engine through docker-py's
    # shell-out adapter; the paramiko adapter is mounted in its place, then we negotiate
    client = docker.DockerClient(base_url=url, version="1.24", timeout=timeout_s,
                                 use_ssh_client=True, max_pool_size=budget)
    adapter = SSHAdapter(url, config_file, timeout_s, budget)
    api = client.api
    api._custom_adapter = adapter
    api.mount("http+docker://ssh", adapter)
    api._version = str(api._retrieve_server_version())
    return client
