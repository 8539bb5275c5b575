"""What the steps ask of the engine: a container's full create configuration captured without
its secret values, containers created from such a configuration, renames, network endpoints,
health waits, socket tables (for draining) and proxy reloads.

A captured container (:func:`container_state`) is JSON-able and holds no secret value: the
environment is kept as ``[key, "sha256:<hex>"]`` pairs, and any command, entrypoint or
healthcheck argument or label that carries a secret of the container is kept as its hash
(``{"secret": "sha256:<hex>"}``). Recreating a container from such a state
(:func:`spec_from_state`) takes each hashed value from a *live source* at that moment: the
kept blue container, the green container that replaced it, or any other container of the
project whose environment holds a value with the same hash. When no source holds it, the
recreation is refused (:class:`~revivadiag.errors.StepError`) instead of guessing.

>>> value_hash("s3cret")[:15]
'sha256:1ec1c26b'
>>> comparable({"id": "x", "name": "p_db", "health": "starting", "status": "running",
...             "env": [["A", "sha256:1"]], "networks": {}, "mounts": [], "image_id": "i",
...             "config": {}, "host_config": {}})["name"]
'p_db'
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import requests.exceptions

from revivadiag.collect import connections as conn
from revivadiag.errors import StepError
from revivadiag.redact import is_sensitive_label, raw_env, secret_values, split_env

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
NUMBER_LABEL = "com.docker.compose.container-number"
#: label a container created by a migration step carries (value: the step id); Compose ignores
#: labels it does not know, so the end state stays Compose's
STEP_LABEL = "io.revivadiag.migrate.step"
#: ``Config`` keys a create call takes back verbatim
CONFIG_KEYS = ("Hostname", "Domainname", "User", "ExposedPorts", "Tty", "OpenStdin", "StdinOnce",
               "Cmd", "Entrypoint", "Healthcheck", "Image", "Volumes", "WorkingDir", "Labels",
               "StopSignal", "StopTimeout", "Shell")
#: ``HostConfig`` keys kept (the rest are engine defaults a create call fills in again)
HOST_KEYS = ("Binds", "Mounts", "PortBindings", "RestartPolicy", "LogConfig", "NetworkMode",
             "CapAdd", "CapDrop", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "Init",
             "Privileged", "ReadonlyRootfs", "SecurityOpt", "ShmSize", "Sysctls", "Tmpfs",
             "Ulimits", "VolumesFrom", "Devices", "GroupAdd", "PidMode", "IpcMode",
             "Memory", "NanoCpus", "CpuShares", "PublishAllPorts", "AutoRemove")
POLL_S = 0.2


def value_hash(value: str) -> str:
    """``sha256:<hex>`` of a value (how secrets and env values are kept in a before-state)."""
    return "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()


def inspect(client: Any, ref: str) -> dict[str, Any] | None:
    """The inspect dict of a container by id or name, None when there is none."""
    try:
        found: dict[str, Any] = client.api.inspect_container(ref)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise StepError("engine", f"inspect {ref}: {exc.explanation or exc}") from exc
    return found


def name_of(found: Mapping[str, Any]) -> str:
    return str(found.get("Name") or "").lstrip("/")


def health_of(found: Mapping[str, Any]) -> str:
    health = (found.get("State") or {}).get("Health")
    return str(health.get("Status")) if health else "none"


def _hide(value: Any, secrets: set[str]) -> Any:
    """A string holding a secret becomes ``{"secret": hash}``; lists are walked."""
    if isinstance(value, str) and any(s in value for s in secrets):
        return {"secret": value_hash(value)}
    if isinstance(value, list):
        return [_hide(v, secrets) for v in value]
    return value


def container_state(found: Mapping[str, Any]) -> dict[str, Any]:
    """A container's create configuration and live status, without secret values."""
    config = found.get("Config") or {}
    host = found.get("HostConfig") or {}
    secrets = secret_values([found])
    cid = str(found.get("Id") or "")
    kept_config: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        value = config.get(key)
        if value in (None, "", [], {}, False):
            continue
        if key == "Hostname" and value == cid[:12]:
            continue  # the engine's default: the new container's own short id
        if key == "Labels":
            value = {k: ({"secret": value_hash(v)} if is_sensitive_label(k) and v
                         else _hide(v, secrets)) for k, v in value.items()}
        elif key == "Healthcheck":
            value = {**value, "Test": _hide(list(value.get("Test") or []), secrets)}
        else:
            value = _hide(value, secrets)
        kept_config[key] = value
    networks = {}
    for net, ep in sorted(((found.get("NetworkSettings") or {}).get("Networks") or {}).items()):
        ep = ep or {}
        aliases = [a for a in ep.get("Aliases") or [] if a != cid[:12]]
        ipv4 = ((ep.get("IPAMConfig") or {}).get("IPv4Address")) or ""
        networks[net] = {"aliases": sorted(dict.fromkeys(aliases)), "ipv4": ipv4,
                         "ip": str(ep.get("IPAddress") or "")}
    mounts = sorted(
        ({"type": str(m.get("Type") or ""), "name": str(m.get("Name") or ""),
          "source": str(m.get("Source") or "") if m.get("Type") == "bind" else "",
          "destination": str(m.get("Destination") or ""), "rw": bool(m.get("RW"))}
         for m in found.get("Mounts") or []), key=lambda m: str(m["destination"]))
    state = found.get("State") or {}
    labels = config.get("Labels") or {}
    return {
        "id": cid,
        "name": name_of(found),
        "project": str(labels.get(PROJECT_LABEL, "")),
        "service": str(labels.get(SERVICE_LABEL, "")),
        "status": str(state.get("Status") or ""),
        "running": bool(state.get("Running")),
        "health": health_of(found),
        "image_id": str(found.get("Image") or ""),
        "env": [[k, value_hash(v)]
                for k, v in (split_env(str(e)) for e in config.get("Env") or [])],
        "config": kept_config,
        "host_config": {k: _hide(host[k], secrets) for k in HOST_KEYS
                        if host.get(k) not in (None, "", [], {}, 0, False)},
        "networks": networks,
        "mounts": mounts,
    }


def comparable(state: Mapping[str, Any]) -> dict[str, Any]:
    """What "the same container" means when a state is compared after an undo: name,
    image, environment hashes, configuration, networks with aliases, mounts and whether it
    runs (ids, addresses and transient health left out)."""
    nets = {n: {"aliases": v.get("aliases", []), "ipv4": v.get("ipv4", "")}
            for n, v in (state.get("networks") or {}).items()}
    config = dict(state.get("config") or {})
    return {"name": state.get("name"), "image_id": state.get("image_id"),
            "env": state.get("env"), "config": config,
            "host_config": state.get("host_config"), "networks": nets,
            "mounts": state.get("mounts"), "running": state.get("running")}


# ---------------------------------------------------------------- specs (memory only)


@dataclass
class Spec:
    """A container to create: the Engine API create body (``Env`` with real values: memory
    only, never logged or journalled) and its networks in order (the first one is given at
    create time, the others connected before start), each with its aliases."""

    name: str
    body: dict[str, Any]
    networks: dict[str, list[str]] = field(default_factory=dict)

    def __repr__(self) -> str:  # the body holds secrets
        return f"Spec(name={self.name!r}, networks={list(self.networks)})"

    def without_ports(self) -> Spec:
        """The same container publishing no host port (to prove it healthy beside the one
        that holds the port)."""
        host = {k: v for k, v in self.body.get("HostConfig", {}).items() if k != "PortBindings"}
        return Spec(self.name, {**self.body, "HostConfig": host}, dict(self.networks))

    @property
    def port_bindings(self) -> dict[str, Any]:
        return dict((self.body.get("HostConfig") or {}).get("PortBindings") or {})


def _source_values(sources: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """hash -> value of every string a source container holds (env values, argv items,
    labels)."""
    out: dict[str, str] = {}
    for found in sources:
        config = found.get("Config") or {}
        texts: list[str] = list(raw_env(found).values())
        texts += [str(t) for t in (config.get("Cmd") or []) + (config.get("Entrypoint") or [])]
        texts += [str(t) for t in ((config.get("Healthcheck") or {}).get("Test") or [])]
        texts += [str(v) for v in (config.get("Labels") or {}).values()]
        for text in texts:
            out.setdefault(value_hash(text), text)
    return out


def _reveal(value: Any, known: Mapping[str, str], what: str) -> Any:
    if isinstance(value, dict) and set(value) == {"secret"}:
        found = known.get(str(value["secret"]))
        if found is None:
            raise StepError(what, "a secret value it needs is held by no live container "
                            "any more (hash " + str(value["secret"])[:19] + "...)")
        return found
    if isinstance(value, list):
        return [_reveal(v, known, what) for v in value]
    if isinstance(value, dict):
        return {k: _reveal(v, known, what) for k, v in value.items()}
    return value


def spec_from_state(state: Mapping[str, Any], sources: Sequence[Mapping[str, Any]],
                    name: str | None = None) -> Spec:
    """A create spec that gives back the captured container, each hashed value taken from
    ``sources`` (inspect dicts of live containers). StepError when a value is nowhere."""
    what = f"recreate {state.get('name')}"
    known = _source_values(sources)
    env = []
    for key, digest in state.get("env") or []:
        value = known.get(str(digest))
        if value is None:
            raise StepError(what, f"the value of {key} is held by no live container any more")
        env.append(f"{key}={value}")
    config = _reveal(dict(state.get("config") or {}), known, what)
    config["_image_id"] = state.get("image_id") or ""  # create() checks the ref still is it
    host = _reveal(dict(state.get("host_config") or {}), known, what)
    body = {**config, "Env": env, "HostConfig": host}
    nets = {n: list(v.get("aliases") or []) for n, v in (state.get("networks") or {}).items()}
    mode = host.get("NetworkMode")
    if mode in nets:  # the network it was created on first
        nets = {mode: nets[mode], **{n: a for n, a in nets.items() if n != mode}}
    return Spec(name or str(state.get("name")), body, nets)


def create(client: Any, spec: Spec) -> str:
    """Create (not start) the container of ``spec`` on its networks; its id."""
    body = dict(spec.body)
    image_id = body.pop("_image_id", "")
    if image_id and body.get("Image") != image_id:
        try:  # the same tag when it still names the same image, else the image itself
            if client.api.inspect_image(body.get("Image"))["Id"] != image_id:
                body["Image"] = image_id
        except docker.errors.APIError:
            body["Image"] = image_id
    nets = list(spec.networks.items())
    host = dict(body.get("HostConfig") or {})
    if nets:
        host["NetworkMode"] = nets[0][0]
        body["NetworkingConfig"] = {"EndpointsConfig": {nets[0][0]: {"Aliases": nets[0][1]}}}
    body["HostConfig"] = host
    try:
        try:
            created = client.api.create_container_from_config(body, spec.name)
        except requests.exceptions.ReadTimeout:  # a busy engine goes on with it
            time.sleep(2.0)
            created = client.api.inspect_container(spec.name)
        cid = str(created["Id"])
        for net, aliases in nets[1:]:
            client.api.connect_container_to_network(cid, net, aliases=aliases or None)
    except docker.errors.APIError as exc:
        raise StepError(f"create {spec.name}", str(exc.explanation or exc)) from exc
    except requests.exceptions.RequestException as exc:
        raise StepError(f"create {spec.name}", f"the engine did not answer: {exc}") from exc
    return cid


def api(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the engine; a refusal becomes StepError naming ``what``."""
    try:
        return fn(*args, **kwargs)
    except docker.errors.APIError as exc:
        raise StepError(what, str(exc.explanation or exc)) from exc
    except requests.exceptions.RequestException as exc:
        raise StepError(what, f"the engine did not answer: {type(exc).__name__}") from exc


def rename(client: Any, ref: str, new: str) -> None:
    api(f"rename {ref} to {new}", client.api.rename, ref, new)


def _until(client: Any, ref: str, running: bool, what: str, timeout_s: float) -> None:
    """After an engine call timed out on our side (a busy engine goes on with it): wait until
    the container's running state is ``running``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = inspect(client, ref)
        if found is not None and bool((found.get("State") or {}).get("Running")) is running:
            return
        time.sleep(POLL_S)
    raise StepError(what, f"the engine did not finish it within {timeout_s:g} s")


def start(client: Any, ref: str, timeout_s: float = 120.0) -> None:
    try:
        api(f"start {ref}", client.api.start, ref)
    except StepError as exc:
        if not isinstance(exc.__cause__, requests.exceptions.ReadTimeout):
            raise
        _until(client, ref, True, f"start {ref}", timeout_s)


def stop(client: Any, ref: str, timeout_s: float) -> None:
    try:
        api(f"stop {ref}", client.api.stop, ref, timeout=max(1, round(timeout_s)))
    except StepError as exc:
        if not isinstance(exc.__cause__, requests.exceptions.ReadTimeout):
            raise
        _until(client, ref, False, f"stop {ref}", timeout_s + 120.0)


def remove(client: Any, ref: str) -> None:
    try:
        client.api.remove_container(ref, force=True)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        raise StepError(f"remove {ref}", str(exc.explanation or exc)) from exc


def connect(client: Any, ref: str, network: str, aliases: Sequence[str] = ()) -> None:
    api(f"connect {ref} to {network}", client.api.connect_container_to_network, ref, network,
        aliases=list(aliases) or None)


def disconnect(client: Any, ref: str, network: str) -> None:
    try:
        client.api.disconnect_container_from_network(ref, network)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        if "is not connected" in str(exc):
            return
        raise StepError(f"disconnect {ref} from {network}", str(exc.explanation or exc)) from exc


def project_containers(client: Any, project: str) -> list[dict[str, Any]]:
    """Inspect dicts of every container (running or not) of the compose project."""
    listed = api("list containers", client.api.containers, all=True,
                 filters={"label": f"{PROJECT_LABEL}={project}"})
    out = []
    for summary in listed:
        found = inspect(client, str(summary["Id"]))
        if found is not None:
            out.append(found)
    return sorted(out, key=name_of)


def service_containers(client: Any, project: str, service: str) -> list[dict[str, Any]]:
    return [c for c in project_containers(client, project)
            if (c.get("Config") or {}).get("Labels", {}).get(SERVICE_LABEL) == service]


def step_containers(client: Any, step_id: str) -> list[dict[str, Any]]:
    """Containers created by the step ``step_id`` (its label)."""
    listed = api("list containers", client.api.containers, all=True,
                 filters={"label": f"{STEP_LABEL}={step_id}"})
    return [f for s in listed if (f := inspect(client, str(s["Id"]))) is not None]


# ---------------------------------------------------------------- waiting


def has_healthcheck(found: Mapping[str, Any]) -> bool:
    test = ((found.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def ips(found: Mapping[str, Any]) -> list[str]:
    nets = (found.get("NetworkSettings") or {}).get("Networks") or {}
    return [str(n.get("IPAddress")) for n in nets.values() if n and n.get("IPAddress")]


def tcp_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connect to ``host:port`` succeeds (a container of the project)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_ready(client: Any, ref: str, timeout_s: float, port: int | None = None,
               settle_s: float = 2.0) -> float:
    """Wait until the container is healthy (its healthcheck), or, without one, accepts TCP on
    ``port`` (learned by the caller), or else has run ``settle_s`` without restarting.
    Seconds waited; StepError when it exits, turns unhealthy or the time runs out."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        found = inspect(client, ref)
        if found is None:
            raise StepError(f"wait for {ref}", "the container vanished")
        state = found.get("State") or {}
        if state.get("Status") in ("exited", "dead") or int(found.get("RestartCount") or 0):
            raise StepError(f"wait for {ref}", f"it exited (code {state.get('ExitCode')})")
        if state.get("Running"):
            if has_healthcheck(found):
                health = health_of(found)
                if health == "healthy":
                    return time.monotonic() - started
                if health == "unhealthy":
                    raise StepError(f"wait for {ref}", "its healthcheck reports unhealthy")
            elif port is not None:
                if any(tcp_open(ip, port) for ip in ips(found)):
                    return time.monotonic() - started
            elif time.monotonic() - started >= settle_s:
                return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise StepError(f"wait for {ref}", f"not ready within {timeout_s:g} s "
                            f"(health: {health_of(found)})")
        time.sleep(POLL_S)


def socket_table(client: Any, found: Mapping[str, Any]) -> list[conn.Socket]:
    """The container's TCP sockets (procfs as root on the engine host, else ``cat`` through
    exec, as :mod:`revivadiag.collect.stack` reads them); empty when unreadable."""
    import os

    pid = int((found.get("State") or {}).get("Pid") or 0)
    name = name_of(found)
    try:
        if os.geteuid() == 0 and pid > 0 and os.path.exists(f"/proc/{pid}/net/tcp"):
            text = conn.read_procfs_tables(name, pid)
        else:
            text = conn.exec_table_reader(client)(name, pid)
    except OSError:
        return []
    return [s for chunk in conn.split_tables(text) for s in conn.parse_proc_net_tcp(chunk)]


def listening(sockets: Iterable[conn.Socket]) -> list[int]:
    return sorted({s.local_port for s in sockets if s.state == "LISTEN"})


def established(sockets: Sequence[conn.Socket], ports: Iterable[int],
                local_ips: set[str] | None = None) -> int:
    """Established connections *to* the container's own listening ``ports`` from another
    host, on ``local_ips`` when given (a connection left on a network the container has
    left is dead, not draining)."""
    wanted = set(ports)
    return sum(1 for s in sockets if s.state == "ESTABLISHED" and s.local_port in wanted
               and s.remote_ip not in ("127.0.0.1", "::1")
               and (local_ips is None or s.local_ip in local_ips))
