"""One pass over the Docker Engine API: the raw inspect dicts every API collector parses.

This is the only module of the API collectors that talks to the engine. It makes few calls:
one container list filtered by the compose project label, one inspect per container and one
per network those containers are attached to. Everything else (``containers``, ``networks``,
``endpoints``, ``ports``, ``env`` frames) is shaped by pure ``parse_*`` functions from the
:class:`RawInventory` it returns.

The raw dicts hold secrets (the containers' environment): they live in memory for the length
of one snapshot and are never written anywhere; the parsers redact at collection.

Project selection (:func:`choose_project`): an explicit project must exist, else
:class:`~revivadiag.errors.ProjectNotFound` lists the projects seen; with none given, the
only running compose project is used, else the seed's (:data:`revivadiag.seed.PROJECT`) when
present.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import requests.exceptions

from revivadiag import seed
from revivadiag.errors import EngineError, EngineUnreachable, ProjectNotFound

PROJECT_LABEL = "com.docker.compose.project"
#: a Swarm stack's containers carry this instead (``docker stack deploy``): read as the project
STACK_LABEL = "com.docker.stack.namespace"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
#: the project used when several run and none was asked for (the seed's stack)
DEFAULT_PROJECT = seed.PROJECT
#: container inspects in flight (docker-py's connection pool holds 10)
INSPECT_THREADS = 8

Inspect = dict[str, Any]


@dataclass
class RawInventory:
    """Raw inspect dicts of one compose project (secrets included: memory only)."""

    project: str
    containers: list[Inspect] = field(default_factory=list)
    networks: list[Inspect] = field(default_factory=list)
    #: list entries of containers that vanished between the list and their inspect
    vanished: list[Inspect] = field(default_factory=list)
    api_calls: int = 0

    def __repr__(self) -> str:  # never print the environment by accident
        return (
            f"RawInventory(project={self.project!r}, containers={len(self.containers)}, "
            f"networks={len(self.networks)}, vanished={len(self.vanished)})"
        )


def projects_of(summaries: Iterable[Mapping[str, Any]]) -> list[str]:
    """Sorted compose project names found in container list entries."""
    names = {project_label(s.get("Labels") or {}) for s in summaries}
    return sorted(n for n in names if n)


def project_label(labels: Mapping[str, Any]) -> str:
    """The compose project of a container's labels, else its Swarm stack, else ``""``.

    >>> project_label({STACK_LABEL: "shop"}), project_label({})
    ('shop', '')
    """
    return str(labels.get(PROJECT_LABEL) or labels.get(STACK_LABEL) or "")


def choose_project(requested: str | None, known: list[str]) -> str:
    """The project to snapshot, from the one requested and those running.

    >>> choose_project(None, ["shop"])
    'shop'
    >>> choose_project(None, ["a", DEFAULT_PROJECT]) == DEFAULT_PROJECT
    True
    >>> choose_project("b", ["a"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    revivadiag.errors.ProjectNotFound: no compose project named 'b' ... (projects seen: a)
    """
    if requested is not None:
        if requested in known:
            return requested
        raise ProjectNotFound(requested, known)
    if len(known) == 1:
        return known[0]
    if DEFAULT_PROJECT in known:
        return DEFAULT_PROJECT
    raise ProjectNotFound("", known)


def gather(client: docker.DockerClient, project: str | None = None) -> RawInventory:
    """List and inspect every container and network of ``project`` (default: see module doc)."""
    chosen, summaries, calls = list_project(client, project)
    inv = RawInventory(project=chosen, api_calls=calls)
    inspect_containers(client, summaries, inv)
    inspect_networks(client, network_ids(inv.containers), inv)
    return inv


def list_project(
    client: docker.DockerClient, project: str | None = None
) -> tuple[str, list[Inspect], int]:
    """(project chosen, its container list entries, API calls made): usually one call."""
    if project is not None:
        summaries = _list(client, {"label": f"{PROJECT_LABEL}={project}"})
        calls = 1
        if not summaries:  # a Swarm stack of that name?
            summaries, calls = _list(client, {"label": f"{STACK_LABEL}={project}"}), 2
        if not summaries:
            raise ProjectNotFound(project, projects_of(_every(client)))
        return project, summaries, calls
    every = _every(client)
    chosen = choose_project(None, projects_of(every))
    return chosen, [s for s in every if project_label(s.get("Labels") or {}) == chosen], 2


def _every(client: docker.DockerClient) -> list[Inspect]:
    """Every container of a compose project or a Swarm stack (two list calls)."""
    seen: dict[str, Inspect] = {}
    for label in (PROJECT_LABEL, STACK_LABEL):
        for s in _list(client, {"label": label}):
            seen.setdefault(str(s.get("Id")), s)
    return list(seen.values())


def inspect_containers(
    client: docker.DockerClient, summaries: Iterable[Mapping[str, Any]], inv: RawInventory
) -> None:
    """Inspect each listed container into ``inv``; one that vanished goes to ``inv.vanished``.
    Up to :data:`INSPECT_THREADS` inspects are in flight (each is a round trip to the engine)."""
    ordered = sorted(summaries, key=_summary_name)

    def one(summary: Mapping[str, Any]) -> Inspect | None:
        try:
            found: Inspect = _call(client, client.api.inspect_container, summary["Id"])
        except docker.errors.NotFound:
            return None
        return found

    with ThreadPoolExecutor(max_workers=INSPECT_THREADS) as pool:
        found = list(pool.map(one, ordered))
    for summary, inspect in zip(ordered, found, strict=True):
        inv.api_calls += 1
        if inspect is None:
            inv.vanished.append(dict(summary))
        else:
            inv.containers.append(inspect)


def network_ids(containers: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids of the networks the containers are attached to, first-seen order."""
    seen: dict[str, None] = {}
    for c in containers:
        for ep in ((c.get("NetworkSettings") or {}).get("Networks") or {}).values():
            nid = str((ep or {}).get("NetworkID") or "")
            if nid:
                seen.setdefault(nid, None)
    return list(seen)


def inspect_networks(client: docker.DockerClient, ids: Iterable[str], inv: RawInventory) -> None:
    """Inspect each network into ``inv`` (a network removed meanwhile is skipped)."""
    for nid in ids:
        inv.api_calls += 1
        try:
            inv.networks.append(_call(client, client.api.inspect_network, nid))
        except docker.errors.NotFound:
            continue


def _summary_name(summary: Mapping[str, Any]) -> str:
    names = summary.get("Names") or [""]
    return str(names[0]).lstrip("/")


def _list(client: docker.DockerClient, filters: dict[str, str]) -> list[Inspect]:
    result: list[Inspect] = _call(client, client.api.containers, all=True, filters=filters)
    return result


def _call(client: docker.DockerClient, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the API; connection failures become EngineUnreachable (NotFound passes through)."""
    try:
        return fn(*args, **kwargs)
    except docker.errors.NotFound:
        raise
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, OSError) as exc:
        address = str(getattr(client.api, "base_url", "")) or "the engine"
        raise EngineUnreachable(address, str(exc).splitlines()[0][:300]) from exc



def read_project(project: str | None, docker_host: str | None = None) -> RawInventory:
    """Connect to the engine at ``docker_host``, :func:`gather` ``project``, close.

    Raises EngineUnreachable when no engine answers, EngineError when it refuses a request,
    ProjectNotFound when no container carries the project's label.
    """
    from revivadiag.engine.client import connect, engine_address

    client = connect(docker_host)
    try:
        inventory = gather(client, project)
    except docker.errors.APIError as exc:
        raise EngineError(f"the engine at {engine_address(docker_host)} refused to list "
                          f"containers: {exc.explanation or exc}") from exc
    finally:
        client.close()
    if not inventory.containers and project is not None:  # every one vanished meanwhile
        raise ProjectNotFound(project, [])
    return inventory


def read_project_secrets(
    project: str | None, docker_host: str | None = None, engines: Sequence[Any] | None = None
) -> tuple[str, set[str]]:
    """(the project chosen, its secret values): one container list and one inspect each.

    The values (:func:`revivadiag.redact.secret_values`) stay in memory, to scrub what a run
    writes. Raises EngineUnreachable or ProjectNotFound, which is how ``revivadiag diagnose``
    fails fast (exit 2) before it starts a kernel.
    """
    from revivadiag.redact import secret_values

    if engines:  # several: the secrets of every engine that runs the project
        return _read_secrets_engines(project, engines)
    inventory = read_project(project, docker_host)
    return inventory.project, secret_values(inventory.containers)


def _read_secrets_engines(project: str | None, engines: Sequence[Any]) -> tuple[str, set[str]]:
    """(project, secrets) over several engines; raises the first engine's error only when
    none of them runs the project (an engine that does not answer is reported by the run)."""
    from revivadiag.engine.engines import open_engine
    from revivadiag.redact import secret_values

    found: str | None = None
    values: set[str] = set()
    errors: list[Exception] = []
    for spec in engines:
        try:
            client = open_engine(spec)
        except EngineError as exc:
            errors.append(exc)
            continue
        try:
            inventory = gather(client, project if found is None else found)
        except (ProjectNotFound, EngineError) as exc:
            errors.append(exc)
            continue
        finally:
            client.close()
        found = found or inventory.project
        values |= secret_values(inventory.containers)
    if found is None:
        raise next((e for e in errors if isinstance(e, ProjectNotFound)), errors[0])
    return found, values
