"""The live state of a Compose project, read from the Docker API: what a plan depends on.

:func:`capture_state` gathers, for the containers carrying the project's label
(``com.docker.compose.project``): name, id, service, image id, labels, networks (aliases,
IPv4), the environment as *keys with keyed hashes* of their values, mounts and named volumes,
health and status; then the project's networks (the ones Compose labelled for it, and every
other one its containers are attached to) and its volumes. No secret value is ever stored:
an environment value is kept only as ``HMAC-SHA256(host salt, key=value)`` (16 hex digits),
so two captures on one host compare equal exactly when the values are equal, and nothing
in a state, a plan or a journal can be matched against a guessed password elsewhere. The
salt is 32 random bytes created once per host in
``$REVIVADIAG_STATE_DIR/migrate/env-salt`` (default ``~/.local/state/revivadiag``), mode 0600.

:meth:`ProjectState.fingerprint` is a sha256 over what a plan depends on, and only that:

- per container: name, service, image id, labels, environment keys and value hashes,
  networks with their aliases, mounts (type, volume name or source, destination, rw), and
  whether it runs;
- per network: name, driver, internal, labels; per volume: name, driver.

Left out, because they change when nothing a plan depends on changed: container and network
ids (a recreate with the same configuration), IPv4 addresses (Docker may hand out another
on a restart), the short-id alias Docker adds on each network, health (it moves between
``starting`` and ``healthy`` by itself; :func:`revivadiag.migrate.plan.validate_plan` checks
it separately), restart counts and timestamps.
:meth:`ProjectState.fingerprint_parts` gives the same per object, so a stale plan can say
*what* changed (:func:`diff_parts`).

>>> from dataclasses import replace
>>> c = ContainerState(name="p_db", id="c1", service="db", image_id="sha256:1", status="running",
...     health="healthy", labels={}, env={"A": "h1"}, networks={"p_net": NetworkAttachment(
...     aliases=["db"], ipv4="10.0.0.2")}, mounts=[])
>>> a = ProjectState(project="p", containers=[c], networks=[], volumes=[])
>>> b = ProjectState(project="p", containers=[replace(c, id="c2", health="starting",
...     networks={"p_net": NetworkAttachment(aliases=["db"], ipv4="10.0.0.9")})],
...     networks=[], volumes=[])
>>> a.fingerprint() == b.fingerprint()
True
>>> diff_states(a, b)[["object", "field", "before", "after"]].values.tolist()
[['container db', 'id', 'c1', 'c2'], ['container db', 'health', 'healthy', 'starting'], \
['container db', 'network p_net ipv4', '10.0.0.2', '10.0.0.9']]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pandas as pd

from revivadiag.errors import EngineError

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NETWORK_LABEL = "com.docker.compose.network"
VOLUME_LABEL = "com.docker.compose.volume"
#: hex digits kept of each environment value's keyed hash
HASH_DIGITS = 16
SALT_FILE = "env-salt"


# ---------------------------------------------------------------- the salt


def _state_root() -> Path:
    env = os.environ.get("REVIVADIAG_STATE_DIR")
    return Path(env) if env else Path.home() / ".local" / "state" / "revivadiag"


def host_salt() -> bytes:
    """This host's salt for environment hashes (created once, mode 0600)."""
    path = _state_root() / "migrate" / SALT_FILE
    try:
        data = path.read_bytes()
        if len(data) >= 16:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fresh = secrets.token_bytes(32)
    tmp = path.with_name(f".{SALT_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(fresh)
    try:  # another process may have won the race: keep the first salt written
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


def value_hash(salt: bytes, key: str, value: str) -> str:
    """The keyed hash an environment value is stored as.

    >>> value_hash(b"s" * 32, "A", "x") == value_hash(b"s" * 32, "A", "x")
    True
    >>> value_hash(b"s" * 32, "A", "x") == value_hash(b"t" * 32, "A", "x")
    False
    """
    mac = hmac.new(salt, f"{key}={value}".encode(), hashlib.sha256)
    return mac.hexdigest()[:HASH_DIGITS]


# ---------------------------------------------------------------- the state


@dataclass(frozen=True)
class NetworkAttachment:
    """A container's endpoint on one network."""

    aliases: list[str] = field(default_factory=list)
    ipv4: str = ""


@dataclass(frozen=True)
class Mount:
    """One mount: ``type`` volume/bind/tmpfs, ``name`` (volume) or ``source`` (bind)."""

    type: str
    destination: str
    name: str = ""
    source: str = ""
    rw: bool = True


@dataclass(frozen=True)
class ContainerState:
    """One container of the project (environment values as keyed hashes only)."""

    name: str
    id: str
    service: str
    image_id: str
    status: str
    health: str
    labels: dict[str, str]
    env: dict[str, str]
    networks: dict[str, NetworkAttachment]
    mounts: list[Mount]
    #: the image reference it was created from (``Config.Image``)
    image: str = ""
    has_healthcheck: bool = False

    @property
    def volumes(self) -> list[str]:
        """Names of the named volumes it mounts."""
        return sorted(m.name for m in self.mounts if m.type == "volume" and m.name)

    def planned(self) -> dict[str, Any]:
        """What a plan depends on (the fingerprint's input for this container)."""
        return {
            "name": self.name, "service": self.service, "image_id": self.image_id,
            "labels": dict(sorted(self.labels.items())),
            "env": dict(sorted(self.env.items())),
            "networks": {n: sorted(a.aliases) for n, a in sorted(self.networks.items())},
            "mounts": sorted([m.type, m.name or m.source, m.destination, m.rw]
                             for m in self.mounts),
            "running": self.status == "running",
        }


@dataclass(frozen=True)
class NetworkState:
    """A network of the project."""

    name: str
    id: str
    driver: str
    internal: bool
    labels: dict[str, str]

    @property
    def compose_key(self) -> str:
        """The key Compose declared it under (empty when Compose did not create it)."""
        return self.labels.get(NETWORK_LABEL, "")

    def planned(self) -> dict[str, Any]:
        return {"name": self.name, "driver": self.driver, "internal": self.internal,
                "labels": dict(sorted(self.labels.items()))}


@dataclass(frozen=True)
class VolumeState:
    """A volume of the project (its label, or mounted by one of its containers)."""

    name: str
    driver: str
    labels: dict[str, str]

    def planned(self) -> dict[str, Any]:
        return {"name": self.name, "driver": self.driver}


@dataclass(frozen=True)
class ProjectState:
    """The containers, networks and volumes of one project at one moment."""

    project: str
    containers: list[ContainerState]
    networks: list[NetworkState]
    volumes: list[VolumeState]

    # ------------------------------------------------------------ lookups

    def container(self, name: str) -> ContainerState | None:
        """The container of that name, or None."""
        return next((c for c in self.containers if c.name == name), None)

    def services(self) -> list[str]:
        """The services that have a container, sorted."""
        return sorted({c.service for c in self.containers})

    def of_service(self, service: str) -> list[ContainerState]:
        """The containers of one service."""
        return [c for c in self.containers if c.service == service]

    def network(self, name: str) -> NetworkState | None:
        return next((n for n in self.networks if n.name == name), None)

    # ------------------------------------------------------------ fingerprint

    def fingerprint_parts(self) -> dict[str, str]:
        """``container NAME`` / ``network NAME`` / ``volume NAME`` -> sha256 of its planned
        part (16 hex digits), plus ``project``."""
        parts = {"project": _digest({"project": self.project})[:16]}
        for c in self.containers:
            parts[f"container {c.name}"] = _digest(c.planned())[:16]
        for n in self.networks:
            parts[f"network {n.name}"] = _digest(n.planned())[:16]
        for v in self.volumes:
            parts[f"volume {v.name}"] = _digest(v.planned())[:16]
        return dict(sorted(parts.items()))

    def fingerprint(self) -> str:
        """``sha256:<hex>`` over :meth:`fingerprint_parts` (see the module doc for what is in
        it and what is left out)."""
        return "sha256:" + _digest(self.fingerprint_parts())

    # ------------------------------------------------------------ frames

    def frames(self) -> dict[str, pd.DataFrame]:
        """``containers``, ``endpoints``, ``env``, ``mounts``, ``networks``, ``volumes``: the
        state as frames (env values as hashes), for a before/after view of a step."""
        return state_frames(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (no secret value: the environment is hashed already)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProjectState:
        """Inverse of :meth:`to_dict`."""
        return cls(
            project=str(data["project"]),
            containers=[
                ContainerState(**{
                    **c,
                    "networks": {k: NetworkAttachment(**v) for k, v in c["networks"].items()},
                    "mounts": [Mount(**m) for m in c["mounts"]],
                }) for c in data["containers"]],
            networks=[NetworkState(**n) for n in data["networks"]],
            volumes=[VolumeState(**v) for v in data["volumes"]],
        )


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- capture


def capture_state(client: Any, project: str, *, salt: bytes | None = None) -> ProjectState:
    """The project's state read from the engine (every container, running or not).

    A project with no container gives a state with no container (the caller decides whether
    that is an error). Engine failures become :class:`~revivadiag.errors.EngineError`.
    """
    key = salt if salt is not None else host_salt()
    try:
        found = client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={project}"})
        containers = [parse_container(c.attrs, key) for c in found]
        net_ids: dict[str, str] = {}
        for raw in found:
            for name, ep in ((raw.attrs.get("NetworkSettings") or {}).get("Networks")
                             or {}).items():
                net_ids[name] = str(ep.get("NetworkID") or name)
        labelled = client.api.networks(filters={"label": f"{PROJECT_LABEL}={project}"})
        for net in labelled:
            net_ids.setdefault(str(net["Name"]), str(net["Id"]))
        networks = []
        for _name, ident in sorted(net_ids.items()):
            try:
                networks.append(parse_network(client.api.inspect_network(ident)))
            except docker.errors.NotFound:
                continue  # removed between the two calls
        vol_names = {str(v["Name"]) for v in (client.api.volumes(
            filters={"label": f"{PROJECT_LABEL}={project}"}).get("Volumes") or [])}
        vol_names |= {v for c in containers for v in c.volumes}
        volumes = []
        for name in sorted(vol_names):
            try:
                volumes.append(parse_volume(client.api.inspect_volume(name)))
            except docker.errors.NotFound:
                continue
    except docker.errors.APIError as exc:
        raise EngineError(f"reading project {project!r} from the engine failed: "
                          f"{exc.explanation or exc}") from exc
    containers.sort(key=lambda c: (c.service, c.name))
    return ProjectState(project=project, containers=containers, networks=networks,
                        volumes=volumes)


def parse_container(attrs: Mapping[str, Any], salt: bytes) -> ContainerState:
    """A :class:`ContainerState` from an inspect dict (environment values hashed here).

    >>> attrs = {"Name": "/p_db", "Id": "abcdef123456789", "Image": "sha256:1",
    ...     "Config": {"Env": ["PW=secret", "X=1"], "Labels": {SERVICE_LABEL: "db"},
    ...                "Image": "pg:15"},
    ...     "State": {"Status": "running", "Health": {"Status": "healthy"}},
    ...     "NetworkSettings": {"Networks": {"n": {"Aliases": ["db", "abcdef123456"],
    ...                                           "IPAddress": "10.0.0.2"}}},
    ...     "Mounts": [{"Type": "volume", "Name": "p_data", "Destination": "/d", "RW": True}]}
    >>> c = parse_container(attrs, b"k" * 32)
    >>> c.name, c.service, sorted(c.env), c.networks["n"].aliases, c.volumes
    ('p_db', 'db', ['PW', 'X'], ['db'], ['p_data'])
    >>> "secret" in json.dumps(c.planned())
    False
    """
    config = attrs.get("Config") or {}
    state = attrs.get("State") or {}
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    ident = str(attrs.get("Id") or "")
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        k, _, v = str(item).partition("=")
        env[k] = value_hash(salt, k, v)
    networks = {}
    for name, ep in ((attrs.get("NetworkSettings") or {}).get("Networks") or {}).items():
        aliases = [str(a) for a in ep.get("Aliases") or []
                   if not (len(str(a)) >= 12 and ident.startswith(str(a)))]
        networks[str(name)] = NetworkAttachment(aliases=sorted(dict.fromkeys(aliases)),
                                                ipv4=str(ep.get("IPAddress") or ""))
    mounts = [Mount(type=str(m.get("Type") or ""), destination=str(m.get("Destination") or ""),
                    name=str(m.get("Name") or "") if m.get("Type") == "volume" else "",
                    source="" if m.get("Type") == "volume" else str(m.get("Source") or ""),
                    rw=bool(m.get("RW", True)))
              for m in attrs.get("Mounts") or []]
    health = state.get("Health")
    test = (config.get("Healthcheck") or {}).get("Test") or []
    return ContainerState(
        name=str(attrs.get("Name") or "").lstrip("/"), id=ident,
        service=labels.get(SERVICE_LABEL, ""), image_id=str(attrs.get("Image") or ""),
        status=str(state.get("Status") or ""),
        health=str(health.get("Status") or "none") if health else "none",
        labels=labels, env=env, networks=networks, mounts=mounts,
        image=str(config.get("Image") or ""),
        has_healthcheck=bool(test) and test[0] != "NONE")


def parse_network(attrs: Mapping[str, Any]) -> NetworkState:
    """A :class:`NetworkState` from a network inspect dict."""
    return NetworkState(name=str(attrs.get("Name") or ""), id=str(attrs.get("Id") or ""),
                        driver=str(attrs.get("Driver") or ""),
                        internal=bool(attrs.get("Internal")),
                        labels={str(k): str(v) for k, v in (attrs.get("Labels") or {}).items()})


def parse_volume(attrs: Mapping[str, Any]) -> VolumeState:
    """A :class:`VolumeState` from a volume inspect dict."""
    return VolumeState(name=str(attrs.get("Name") or ""), driver=str(attrs.get("Driver") or ""),
                       labels={str(k): str(v) for k, v in (attrs.get("Labels") or {}).items()})


# ---------------------------------------------------------------- frames and diffs

#: frame -> column -> dtype (the frames of :meth:`ProjectState.frames`)
FRAME_COLUMNS: dict[str, dict[str, str]] = {
    "containers": {"name": "string", "id": "string", "service": "string",
                   "image": "string", "image_id": "string", "status": "string",
                   "health": "string", "volumes": "object", "labels": "object"},
    "endpoints": {"container": "string", "service": "string", "network": "string",
                  "aliases": "object", "ipv4": "string"},
    "env": {"container": "string", "service": "string", "key": "string",
            "value_hash": "string"},
    "mounts": {"container": "string", "service": "string", "type": "string",
               "name": "string", "source": "string", "destination": "string", "rw": "boolean"},
    "networks": {"name": "string", "id": "string", "driver": "string", "internal": "boolean",
                 "compose_key": "string"},
    "volumes": {"name": "string", "driver": "string"},
}
#: columns of :func:`diff_states`
DIFF_COLUMNS = {"object": "string", "field": "string", "before": "string", "after": "string"}


def _frame(name: str, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    cols = FRAME_COLUMNS.get(name, DIFF_COLUMNS)
    df = pd.DataFrame(list(rows), columns=list(cols))
    return df.astype(cols)


def state_frames(state: ProjectState) -> dict[str, pd.DataFrame]:
    """See :meth:`ProjectState.frames`; columns and dtypes in :data:`FRAME_COLUMNS`."""
    cs = state.containers
    return {
        "containers": _frame("containers", (
            {"name": c.name, "id": c.id[:12], "service": c.service, "image": c.image,
             "image_id": c.image_id, "status": c.status, "health": c.health,
             "volumes": c.volumes, "labels": dict(sorted(c.labels.items()))} for c in cs)),
        "endpoints": _frame("endpoints", (
            {"container": c.name, "service": c.service, "network": n, "aliases": a.aliases,
             "ipv4": a.ipv4} for c in cs for n, a in sorted(c.networks.items()))),
        "env": _frame("env", (
            {"container": c.name, "service": c.service, "key": k, "value_hash": h}
            for c in cs for k, h in sorted(c.env.items()))),
        "mounts": _frame("mounts", (
            {"container": c.name, "service": c.service, **asdict(m)} for c in cs
            for m in c.mounts)),
        "networks": _frame("networks", (
            {"name": n.name, "id": n.id[:12], "driver": n.driver, "internal": n.internal,
             "compose_key": n.compose_key} for n in state.networks)),
        "volumes": _frame("volumes", ({"name": v.name, "driver": v.driver}
                                      for v in state.volumes)),
    }


def _container_keys(state: ProjectState) -> dict[str, ContainerState]:
    """Containers keyed by service when it has one container, else by name (so a renamed
    container shows as a changed ``name``, not as one removed and one added)."""
    per: dict[str, int] = {}
    for c in state.containers:
        per[c.service] = per.get(c.service, 0) + 1
    return {(c.service if c.service and per[c.service] == 1 else c.name): c
            for c in state.containers}


def _flat(c: ContainerState) -> dict[str, str]:
    out = {"name": c.name, "id": c.id[:12], "image": c.image, "image_id": c.image_id,
           "status": c.status, "health": c.health}
    out |= {f"label {k}": v for k, v in c.labels.items()}
    out |= {f"env {k}": f"hash {v}" for k, v in c.env.items()}
    for n, a in c.networks.items():
        out[f"network {n} aliases"] = ",".join(a.aliases)
        out[f"network {n} ipv4"] = a.ipv4
    for m in c.mounts:
        out[f"mount {m.destination}"] = f"{m.type} {m.name or m.source} {'rw' if m.rw else 'ro'}"
    return out


def _diff_flat(obj: str, a: Mapping[str, str] | None, b: Mapping[str, str] | None,
               rows: list[dict[str, str]]) -> None:
    if a is None or b is None:
        rows.append({"object": obj, "field": "exists", "before": str(a is not None).lower(),
                     "after": str(b is not None).lower()})
        return
    for key in dict.fromkeys([*a, *b]):
        if a.get(key) != b.get(key):
            rows.append({"object": obj, "field": key, "before": a.get(key, ""),
                         "after": b.get(key, "")})


def diff_states(a: ProjectState, b: ProjectState) -> pd.DataFrame:
    """What differs between two states: one row per changed field (``object``, ``field``,
    ``before``, ``after``); empty when equal. Environment values show as their hashes."""
    rows: list[dict[str, str]] = []
    ca, cb = _container_keys(a), _container_keys(b)
    for key in sorted(set(ca) | set(cb)):
        _diff_flat(f"container {key}", _flat(ca[key]) if key in ca else None,
                   _flat(cb[key]) if key in cb else None, rows)
    na = {n.name: n for n in a.networks}
    nb = {n.name: n for n in b.networks}
    for key in sorted(set(na) | set(nb)):
        fa = {k: str(v) for k, v in na[key].planned().items()} if key in na else None
        fb = {k: str(v) for k, v in nb[key].planned().items()} if key in nb else None
        _diff_flat(f"network {key}", fa, fb, rows)
    va = {v.name: v for v in a.volumes}
    vb = {v.name: v for v in b.volumes}
    for key in sorted(set(va) | set(vb)):
        fa = {"driver": va[key].driver} if key in va else None
        fb = {"driver": vb[key].driver} if key in vb else None
        _diff_flat(f"volume {key}", fa, fb, rows)
    return _frame("diff", rows)


def diff_parts(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """What changed between two :meth:`ProjectState.fingerprint_parts`, one line each.

    >>> diff_parts({"container a": "1", "network n": "2"}, {"container a": "3", "volume v": "4"})
    ['container a changed', 'network n is gone', 'volume v is new']
    """
    out = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            out.append(f"{key} is gone")
        elif key not in before:
            out.append(f"{key} is new")
        elif before[key] != after[key]:
            out.append(f"{key} changed")
    return out


__all__ = ["ContainerState", "Mount", "NetworkAttachment", "NetworkState", "ProjectState",
           "VolumeState", "capture_state", "diff_parts", "diff_states"]
