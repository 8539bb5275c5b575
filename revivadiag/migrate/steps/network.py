"""Network steps: ``network.create``, ``network.connect``, ``network.disconnect``,
``network.remove``.

``network.create`` makes the network as Compose would (driver, ``internal``, and Compose's
labels ``com.docker.compose.network`` = the ``compose_key``, ``.project``, ``.version``, taken
from the target files when the context has them, so that ``up -d`` later adopts it). A
network that exists already is left alone (re-running changes nothing); undo removes only a
network that did not exist before the step (and carries the project's label). No label of
ours goes on it: Compose warns about labels it did not set.

``network.remove`` disconnects the project's containers still attached (green's temporary
endpoints from a switch, blue containers kept for rollback), then removes it; its inverse
holds the network's configuration and every endpoint with its aliases, so undo recreates it
and reconnects them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import docker.errors

from revivadiag.errors import StepError
from revivadiag.migrate.model import Applied, Context
from revivadiag.migrate.steps import engine as eng
from revivadiag.migrate.steps.base import BaseStep, ParamSpec
from revivadiag.migrate.steps.compose_target import load_target


def network_state(client: Any, name: str) -> dict[str, Any] | None:
    """A network's configuration and endpoints (container name -> aliases), or None."""
    try:
        net = client.api.inspect_network(name)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        raise StepError(f"inspect network {name}", str(exc.explanation or exc)) from exc
    if net.get("Name") != name:
        return None
    endpoints = {}
    for cid in sorted(net.get("Containers") or {}):
        found = eng.inspect(client, cid)
        if found is None:
            continue
        ep = ((found.get("NetworkSettings") or {}).get("Networks") or {}).get(name) or {}
        endpoints[eng.name_of(found)] = sorted(a for a in ep.get("Aliases") or []
                                               if a != found["Id"][:12])
    ipam = net.get("IPAM") or {}
    return {"name": name, "id": net.get("Id"), "driver": net.get("Driver"),
            "internal": bool(net.get("Internal")), "attachable": bool(net.get("Attachable")),
            "labels": dict(net.get("Labels") or {}), "options": dict(net.get("Options") or {}),
            "ipam": {"Driver": ipam.get("Driver") or "default",
                     "Config": list(ipam.get("Config") or [])},
            "enable_ipv6": bool(net.get("EnableIPv6")), "endpoints": endpoints}


def create_network(client: Any, state: Mapping[str, Any]) -> str:
    ipam = state.get("ipam") or {}
    try:
        created = client.api.create_network(
            state["name"], driver=state.get("driver") or "bridge",
            options=state.get("options") or None, internal=bool(state.get("internal")),
            labels=dict(state.get("labels") or {}), attachable=bool(state.get("attachable")),
            enable_ipv6=bool(state.get("enable_ipv6")),
            ipam={"Driver": ipam.get("Driver") or "default", "Config": ipam.get("Config") or [],
                  "Options": None} if ipam.get("Config") else None,
            check_duplicate=True)
    except docker.errors.APIError as exc:
        raise StepError(f"create network {state['name']}", str(exc.explanation or exc)) from exc
    return str(created.get("Id"))


def remove_network(client: Any, name: str) -> None:
    try:
        client.api.remove_network(name)
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        raise StepError(f"remove network {name}", str(exc.explanation or exc)) from exc


class NetworkCreate(BaseStep):
    kind = "network.create"
    PARAMS: ClassVar[ParamSpec] = {
        "network": (str, True), "compose_key": (str, False), "driver": (str, False),
        "internal": (bool, False)}

    def wanted(self, ctx: Context) -> dict[str, Any]:
        name = str(self.param("network"))
        key = self.param("compose_key", default=None) or name
        spec: dict[str, Any] = {}
        version = ""
        if ctx.target_files:
            target = load_target(ctx)
            spec = dict((target.model.get("networks") or {}).get(key) or {})
            version = target.cli.version
        labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
        labels.update({"com.docker.compose.network": key,
                       "com.docker.compose.project": ctx.project})
        if version:
            labels["com.docker.compose.version"] = version
        return {"name": name, "driver": self.param("driver", default=None)
                or spec.get("driver") or "bridge",
                "internal": bool(self.param("internal", bool, default=None)
                                 or spec.get("internal")),
                "attachable": bool(spec.get("attachable")), "labels": labels,
                "options": dict(spec.get("driver_opts") or {})}

    def describe(self, ctx: Context) -> list[str]:
        w = self.wanted(ctx)
        return [f"docker network create --driver {w['driver']}"
                + (" --internal" if w["internal"] else "")
                + f" --label com.docker.compose.network={w['labels']['com.docker.compose.network']}"
                + f" {w['name']} (unless it exists)"]

    def capture(self, ctx: Context) -> dict[str, Any]:
        return {"network": self.param("network"),
                "existed": network_state(ctx.client, str(self.param("network")))}

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        return {"remove": None if before["existed"] else before["network"]}

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        if network_state(ctx.client, before["network"]) is not None:
            ctx.log(f"{self.id}: network {before['network']} exists; nothing to do")
            return {"network": before["network"], "created": False}
        nid = create_network(ctx.client, self.wanted(ctx))
        ctx.log(f"{self.id}: created network {before['network']}")
        return {"network": before["network"], "created": True, "id": nid}

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        return Applied.APPLIED if network_state(ctx.client, before["network"]) else \
            Applied.NOT_APPLIED

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        name = undo.get("remove")
        if not name:
            return
        now = network_state(ctx.client, name)
        if now is None:
            return
        if now["labels"].get("com.docker.compose.project") != ctx.project:
            raise StepError(f"undo {self.id}", f"network {name} is not of project "
                            f"{ctx.project}: not removing it")
        if now["endpoints"]:
            raise StepError(f"undo {self.id}", f"network {name} still has "
                            f"{', '.join(now['endpoints'])} attached")
        remove_network(ctx.client, name)

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        return [] if network_state(ctx.client, result["network"]) else \
            [f"network {result['network']} no longer exists"]


def _endpoint(client: Any, container: str, network: str) -> list[str] | None:
    found = eng.inspect(client, container)
    if found is None:
        raise StepError(f"network step on {container}", "no such container")
    ep = ((found.get("NetworkSettings") or {}).get("Networks") or {}).get(network)
    if ep is None:
        return None
    return sorted(a for a in ep.get("Aliases") or [] if a != found["Id"][:12])


class _Endpoint(BaseStep):
    """A step on one container's endpoint: the before-state is its aliases there (None: not
    attached), and undo puts the endpoint back as it was."""

    def capture(self, ctx: Context) -> dict[str, Any]:
        c, n = str(self.param("container")), str(self.param("network"))
        return {"container": c, "network": n, "aliases": _endpoint(ctx.client, c, n)}

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        return {"container": before["container"], "network": before["network"],
                "restore_aliases": before["aliases"]}

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        restore_endpoint(ctx.client, before["container"], before["network"], before["aliases"])


class NetworkConnect(_Endpoint):
    kind = "network.connect"
    PARAMS: ClassVar[ParamSpec] = {
        "container": (str, True), "network": (str, True), "aliases": (list, False)}

    def aliases(self) -> list[str]:
        return [str(a) for a in self.param("aliases", list, default=None) or []]

    def describe(self, ctx: Context) -> list[str]:
        return [f"docker network connect --alias {','.join(self.aliases()) or '-'} "
                f"{self.param('network')} {self.param('container')}"]


    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        c, n = before["container"], before["network"]
        now = _endpoint(ctx.client, c, n)
        want = self.aliases()
        if now is not None and set(want) <= set(now):
            return {"container": c, "network": n, "aliases": now, "changed": False}
        if now is not None:
            eng.disconnect(ctx.client, c, n)
        eng.connect(ctx.client, c, n, sorted(set(want) | set(now or [])))
        return {"container": c, "network": n, "aliases": _endpoint(ctx.client, c, n),
                "changed": True}

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        now = _endpoint(ctx.client, before["container"], before["network"])
        return Applied.APPLIED if now is not None and set(self.aliases()) <= set(now) else \
            Applied.NOT_APPLIED

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        now = _endpoint(ctx.client, result["container"], result["network"])
        if now is None:
            return [f"{result['container']} is no longer on {result['network']}"]
        return [] if sorted(now) == sorted(result["aliases"] or []) else \
            [f"{result['container']} on {result['network']}: aliases {now}, "
             f"not {result['aliases']}"]


def restore_endpoint(client: Any, container: str, network: str, aliases: list[str] | None
                     ) -> None:
    """Put back the container's endpoint on ``network`` as it was (None: not attached)."""
    now = _endpoint(client, container, network)
    if now is not None and aliases is not None and sorted(now) == sorted(aliases):
        return
    if now is not None:
        eng.disconnect(client, container, network)
    if aliases is not None:
        eng.connect(client, container, network, aliases)


class NetworkDisconnect(_Endpoint):
    kind = "network.disconnect"
    PARAMS: ClassVar[ParamSpec] = {"container": (str, True), "network": (str, True)}

    def describe(self, ctx: Context) -> list[str]:
        return [f"docker network disconnect {self.param('network')} {self.param('container')}"]


    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        eng.disconnect(ctx.client, before["container"], before["network"])
        return {"container": before["container"], "network": before["network"]}

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        now = _endpoint(ctx.client, before["container"], before["network"])
        return Applied.APPLIED if now is None else Applied.NOT_APPLIED

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        now = _endpoint(ctx.client, result["container"], result["network"])
        return [] if now is None else [f"{result['container']} is on {result['network']} again"]


class NetworkRemove(BaseStep):
    kind = "network.remove"
    PARAMS: ClassVar[ParamSpec] = {"network": (str, True)}

    def describe(self, ctx: Context) -> list[str]:
        return [f"docker network disconnect {self.param('network')} <each attached container "
                "of the project>", f"docker network rm {self.param('network')}"]

    def capture(self, ctx: Context) -> dict[str, Any]:
        name = str(self.param("network"))
        return {"network": name, "state": network_state(ctx.client, name)}

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        state = before.get("state")
        return {"recreate": state, "reconnect": (state or {}).get("endpoints", {})}

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        state = network_state(ctx.client, before["network"])
        if state is None:
            return {"network": before["network"], "removed": False}
        for container in state["endpoints"]:
            found = eng.inspect(ctx.client, container)
            project = ((found or {}).get("Config") or {}).get("Labels", {}).get(eng.PROJECT_LABEL)
            if project != ctx.project:
                raise StepError(f"{self.id}", f"{container} (not of project {ctx.project}) is "
                                f"attached to {before['network']}; not removing it")
        for container in state["endpoints"]:
            eng.disconnect(ctx.client, container, before["network"])
        remove_network(ctx.client, before["network"])
        ctx.log(f"{self.id}: removed network {before['network']} "
                f"(detached {', '.join(state['endpoints']) or 'nothing'})")
        return {"network": before["network"], "removed": True,
                "detached": sorted(state["endpoints"])}

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        now = network_state(ctx.client, before["network"])
        if now is None:
            return Applied.APPLIED
        was = (before.get("state") or {}).get("endpoints") or {}
        return Applied.NOT_APPLIED if set(now["endpoints"]) == set(was) else Applied.PARTIAL

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        state = before.get("state")
        if state is None:
            return
        if network_state(ctx.client, state["name"]) is None:
            create_network(ctx.client, state)
        for container, aliases in state["endpoints"].items():
            if eng.inspect(ctx.client, container) is not None:
                restore_endpoint(ctx.client, container, state["name"], list(aliases))

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        return [f"network {result['network']} exists again"] \
            if network_state(ctx.client, result["network"]) else []
