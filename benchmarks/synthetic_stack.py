"""A synthetic compose-like stack for the benchmark: N containers on K networks, then gone.

Every container runs ``busybox httpd`` on port 8080 from the lab's base image, carries
compose labels (project ``rdb<hex>``, service ``svcNN``) and the service name as network
alias, so ``revivadiag.snapshot(project=...)`` sees it as a compose project. Only what this
module created is removed (by id).
"""

from __future__ import annotations

import contextlib
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import docker
import docker.errors

PORT = 8080
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
BENCH_LABEL = "revivadiag.benchmark"
CREATE_THREADS = 4


@dataclass
class SyntheticStack:
    """What was created: project name, container ids by service, network ids."""

    project: str
    image: str
    services: dict[str, str] = field(default_factory=dict)
    network_of: dict[str, str] = field(default_factory=dict)
    networks: list[str] = field(default_factory=list)
    #: service -> its address on its network
    ips: dict[str, str] = field(default_factory=dict)

    def pairs(self) -> list[tuple[str, str]]:
        """Every (source service, target service), source != target."""
        return [(s, t) for s in self.services for t in self.services if s != t]

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"


def create(client: docker.DockerClient, image: str, containers: int, networks: int,
           stack: SyntheticStack | None = None) -> SyntheticStack:
    """Create and start the stack (fills ``stack`` as it goes, so a failure can be undone)."""
    stack = stack or SyntheticStack(project=f"rdb{secrets.token_hex(4)}", image=image)
    return grow(client, stack, containers, networks)


def grow(client: docker.DockerClient, stack: SyntheticStack, containers: int,
         networks: int) -> SyntheticStack:
    """Add networks and containers until the stack has ``containers`` (service ``svcNNN``
    on network ``i % networks``); what exists stays."""
    for k in range(len(stack.networks), networks):
        net = client.networks.create(f"{stack.project}_net{k}", driver="bridge",
                                     labels={PROJECT_LABEL: stack.project, BENCH_LABEL: "1"})
        stack.networks.append(str(net.id))
    names = [f"svc{i:03d}" for i in range(len(stack.services), containers)]
    for i, service in enumerate(names, start=len(stack.services)):
        stack.network_of[service] = f"{stack.project}_net{i % networks}"
    with ThreadPoolExecutor(max_workers=CREATE_THREADS) as pool:
        for service, cid in zip(names, pool.map(lambda s: _start(client, stack, s), names),
                                strict=True):
            stack.services[service] = cid
    for service in names:
        info = client.api.inspect_container(stack.services[service])
        nets = info["NetworkSettings"]["Networks"]
        stack.ips[service] = str(nets[stack.network_of[service]]["IPAddress"])
    return stack


def _start(client: docker.DockerClient, stack: SyntheticStack, service: str) -> str:
    api = client.api
    network = stack.network_of[service]
    created = api.create_container(
        stack.image, entrypoint=["busybox"],
        command=["httpd", "-f", "-p", str(PORT), "-h", "/tmp"],  # noqa: S108 (in the container)
        name=stack.container(service), ports=[PORT],
        labels={PROJECT_LABEL: stack.project, SERVICE_LABEL: service, NUMBER_LABEL: "1",
                BENCH_LABEL: "1"},
        host_config=api.create_host_config(network_mode=network),
        networking_config=api.create_networking_config(
            {network: api.create_endpoint_config(aliases=[service])}))
    cid = str(created["Id"])
    stack.services[service] = cid  # recorded before start: removed even if start fails
    api.start(cid)
    return cid


def remove(client: docker.DockerClient, stack: SyntheticStack) -> None:
    """Remove the containers and networks this stack created (and nothing else)."""
    with ThreadPoolExecutor(max_workers=CREATE_THREADS) as pool:
        list(pool.map(lambda cid: _remove_container(client, cid), list(stack.services.values())))
    for net_id in stack.networks:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_network(net_id)


def _remove_container(client: docker.DockerClient, cid: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(cid, force=True)
