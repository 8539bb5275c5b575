"""``service.replace`` and ``config.env``: one service's container replaced (see
:mod:`revivadiag.migrate.switch` for how, blue-green or stop-start, and what is measured).

``service.replace`` params: ``service``, ``from`` (the container now; default the service's
only running one), ``to`` (the name after; default what the target files give), ``stateful``
(stop-start on the same volume). ``config.env`` params: ``service``, ``set`` {K: V},
``unset`` [K]: green is the target files' container when the context has target files, else
blue's own configuration, with the environment changed. A value in ``set`` is never journalled
(the before-state holds hashes; the inverse names the keys only).

The inverse (``rollback_data``) is computed from the before-state: the blue container to give
back (id, name, networks with aliases, env hashes, mounts), the step label whose containers to
remove, and whether the service was stopped first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from revivadiag.migrate import switch
from revivadiag.migrate.model import Applied, Context
from revivadiag.migrate.steps.base import BaseStep, ParamSpec
from revivadiag.migrate.steps.compose_target import load_target


class ServiceReplace(BaseStep):
    kind = "service.replace"
    #: ``volumes``: the named volumes the service keeps (the planner writes them; the plan's
    #: live checks refuse a missing one, the switch keeps the container's mounts as they are)
    PARAMS: ClassVar[ParamSpec] = {"service": (str, True), "from": (str, False), "to": (str, False),
              "stateful": (bool, False), "volumes": (list, False)}

    @property
    def stateful(self) -> bool:
        return bool(self.param("stateful", bool, default=False))

    def _env(self) -> tuple[dict[str, str], tuple[str, ...]]:
        return {}, ()

    def describe(self, ctx: Context) -> list[str]:
        hint = {"service": self.param("service"), "from": self.param("from", default=None),
                "to": self.param("to", default=None)}
        return switch.describe(hint, self.stateful, ctx.mode)

    def capture(self, ctx: Context) -> dict[str, Any]:
        to = self.param("to", default=None)
        service = str(self.param("service"))
        if to is None and ctx.target_files:
            to = load_target(ctx).container_name(service)
        before = switch.capture(ctx, service, self.param("from", default=None), to)
        before["stateful"] = self.stateful
        return before

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        blue = before["blue"]
        return {"restore": {"id": blue["id"], "name": blue["name"], "running": blue["running"],
                            "networks": blue["networks"], "env": blue["env"],
                            "mounts": blue["mounts"]},
                "remove_label": f"io.revivadiag.migrate.step={self.id}",
                "stop_first": bool(before.get("stateful")
                                   or blue["host_config"].get("PortBindings"))}

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        env_set, env_unset = self._env()
        return switch.apply(ctx, self.id, before, stateful=bool(before.get("stateful")),
                            env_set=env_set, env_unset=env_unset)

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        return switch.classify(ctx, self.id, before)

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        switch.undo(ctx, self.id, before)

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        return switch.drift(ctx, result)


class ConfigEnv(ServiceReplace):
    kind = "config.env"
    PARAMS: ClassVar[ParamSpec] = {
        "service": (str, True), "from": (str, False), "set": (dict, False),
              "unset": (list, False), "stateful": (bool, False)}

    def _env(self) -> tuple[dict[str, str], tuple[str, ...]]:
        sets = self.param("set", dict, default=None) or {}
        return ({str(k): str(v) for k, v in sets.items()},
                tuple(str(k) for k in self.param("unset", list, default=None) or []))

    def capture(self, ctx: Context) -> dict[str, Any]:
        before = switch.capture(ctx, str(self.param("service")), self.param("from", default=None),
                                None)
        before["stateful"] = self.stateful
        return before

    def describe(self, ctx: Context) -> list[str]:
        sets, unset = self._env()
        return [f"environment of {self.param('service')}: set {', '.join(sets) or '-'}; "
                f"unset {', '.join(unset) or '-'}", *super().describe(ctx)]
