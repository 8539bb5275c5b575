"""``cleanup``: remove the blue containers the switches kept for rollback, and green's
temporary endpoints on networks the target does not have.

The before-state holds each removed container's full configuration without secret values
(:func:`~revivadiag.migrate.steps.engine.container_state`). Undo recreates each one, stopped
as it was, under its kept name with its networks and aliases, taking every hashed value from
a live source: the green container that replaced it (same service) or any other container of
the project holding a value with that hash. When none holds it, undo refuses
(StepError) rather than recreating something else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from revivadiag.migrate import switch
from revivadiag.migrate.model import Applied, Context
from revivadiag.migrate.steps import engine as eng
from revivadiag.migrate.steps.base import BaseStep, ParamSpec


def kept_blue(client: Any, project: str) -> list[dict[str, Any]]:
    """Containers of the project a switch renamed aside and stopped."""
    return [c for c in eng.project_containers(client, project)
            if switch.BLUE_SUFFIX in eng.name_of(c) and not c["State"]["Running"]]


class Cleanup(BaseStep):
    kind = "cleanup"
    PARAMS: ClassVar[ParamSpec] = {"temporary_networks": (list, False)}

    def describe(self, ctx: Context) -> list[str]:
        return [f"docker rm <each stopped *{switch.BLUE_SUFFIX}* container of the project>",
                "docker network disconnect <networks the target lacks> <green containers>"]

    def capture(self, ctx: Context) -> dict[str, Any]:
        temps = []
        for net in self.param("temporary_networks", list, default=None) or []:
            for c in eng.project_containers(ctx.client, ctx.project):
                ep = (c["NetworkSettings"]["Networks"] or {}).get(net)
                if ep is not None and c["State"]["Running"]:
                    temps.append({"container": eng.name_of(c), "network": net,
                                  "aliases": sorted(a for a in ep.get("Aliases") or []
                                                    if a != c["Id"][:12])})
        return {"blue": [eng.container_state(c) for c in kept_blue(ctx.client, ctx.project)],
                "temporary": temps}

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        return {"recreate": [b["name"] for b in before["blue"]],
                "reconnect": list(before["temporary"])}

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        for t in before["temporary"]:
            eng.disconnect(ctx.client, t["container"], t["network"])
        removed = []
        for b in before["blue"]:
            eng.remove(ctx.client, b["id"])
            removed.append(b["name"])
        ctx.log(f"{self.id}: removed {', '.join(removed) or 'nothing'}")
        return {"removed": removed, "detached": before["temporary"]}

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        left = [b for b in before["blue"] if eng.inspect(ctx.client, b["id"]) is not None]
        if not before["blue"] or not left:
            return Applied.APPLIED if before["blue"] or not before["temporary"] else \
                Applied.NOT_APPLIED
        return Applied.NOT_APPLIED if len(left) == len(before["blue"]) else Applied.PARTIAL

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        sources = [c for c in eng.project_containers(ctx.client, ctx.project)
                   if c["State"]["Running"]]
        for b in before["blue"]:
            if eng.inspect(ctx.client, b["name"]) is not None:
                continue
            spec = eng.spec_from_state(b, sources)
            cid = eng.create(ctx.client, spec)
            ctx.log(f"{self.id}: recreated {b['name']} ({cid[:12]}), stopped as it was")
        for t in before["temporary"]:
            from revivadiag.migrate.steps.network import restore_endpoint

            restore_endpoint(ctx.client, t["container"], t["network"], t["aliases"])

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        return [f"{n} exists again" for n in result["removed"]
                if eng.inspect(ctx.client, n) is not None]
