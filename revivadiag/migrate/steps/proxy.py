"""``proxy.reload``: the proxy's own reload through exec, its configuration checked first
(``nginx -t -c <the master's file>``; a rejected configuration fails the step and reloads
nothing).

``classify`` reads the nginx worker processes (``docker top``): new worker pids since the
capture mean the reload happened. A reload has no state to undo: its inverse reloads again
(after the steps that changed the configuration were undone, the proxy takes theirs back).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from revivadiag.errors import StepError
from revivadiag.migrate.model import Applied, Context
from revivadiag.migrate.steps import engine as eng
from revivadiag.migrate.steps.base import BaseStep, ParamSpec
from revivadiag.migrate.steps.proxies import reload_nginx, reload_proxies, role_containers


def worker_pids(client: Any, name: str) -> list[str]:
    top = eng.api(f"top {name}", client.api.top, name)
    titles = [str(t).upper() for t in top.get("Titles") or []]
    pid = titles.index("PID") if "PID" in titles else 1
    return sorted(str(p[pid]) for p in top.get("Processes") or []
                  if "worker process" in " ".join(map(str, p)))


class ProxyReload(BaseStep):
    kind = "proxy.reload"
    PARAMS: ClassVar[ParamSpec] = {"service": (str, False)}

    def containers(self, ctx: Context) -> list[str]:
        service = self.param("service", default=None)
        if service is None:
            found = role_containers(ctx.client, ctx.project, "proxy")
        else:
            found = [eng.name_of(c) for c in eng.service_containers(ctx.client, ctx.project,
                                                                     service)
                     if c["State"]["Running"]]
        if not found:
            raise StepError(self.id, f"no running container of {service or 'the proxy role'}")
        return found

    def describe(self, ctx: Context) -> list[str]:
        who = self.param("service", default=None) or "<the proxy role>"
        return [f"docker exec {who} nginx -t -c <conf>", f"docker exec {who} nginx -s reload"]

    def capture(self, ctx: Context) -> dict[str, Any]:
        names = self.containers(ctx)
        for name in names:
            reload_nginx(ctx.client, name, check_only=True)
        return {"containers": names, "workers": {n: worker_pids(ctx.client, n) for n in names}}

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        return {"reload": list(before["containers"])}

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        done = reload_proxies(ctx.client, list(before["containers"]), ctx.log)
        return {"containers": list(before["containers"]), "done": done}

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        changed = [n for n in before["containers"]
                   if eng.inspect(ctx.client, n) is not None
                   and worker_pids(ctx.client, n) != before["workers"].get(n)]
        if not changed:
            return Applied.NOT_APPLIED
        return Applied.APPLIED if len(changed) == len(before["containers"]) else Applied.PARTIAL

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        reload_proxies(ctx.client, list(undo.get("reload") or []), ctx.log)
