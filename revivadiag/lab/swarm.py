"""The lab as a Swarm stack: a swarm-ready variant of a compose file, generated, and
``docker stack deploy`` / ``rm`` of it.

What ``docker stack deploy`` does not take from the lab's compose files, and what
:func:`swarm_ready` changes in a copy (the lab's own files are never edited):

- ``container_name`` is not supported by Swarm (tasks are named ``<stack>_<service>.<slot>.<id>``):
  dropped, and every other service's environment value naming that container is rewritten to
  the service's name (which Swarm's DNS answers);
- ``depends_on`` (and its ``condition:`` forms) is ignored by Swarm: dropped; services that
  start before their dependencies restart until those answer (``restart_policy``);
- ``build`` is not supported: dropped (the lab's images are built beforehand and present on
  every node; no registry is assumed);
- ``ports`` with a host address (``127.0.0.1:3010:3010``) are rejected, and the ingress
  routing mesh that would serve published ports needs IPVS: dropped (the probes work from
  inside the tasks' namespaces);
- ``networks`` with ``driver: bridge`` become ``overlay`` (``attachable: true`` so a probe
  container may join them); an explicit ``name:`` is kept;
- ``profiles`` and ``restart`` are Compose-only: dropped; ``deploy.endpoint_mode`` is set to
  the mode asked for (``vip``, Swarm's default, or ``dnsrr``), ``deploy.replicas`` to the
  count asked for;
- a ``version: "3.8"`` key is added (``docker stack deploy`` of 20.10 requires one).

Variables (``${LAB_PREFIX:?}``, the secrets) are substituted by ``docker stack deploy`` from
its process environment, as Compose does; no secret is written to the generated file.

>>> spec = {"services": {"db": {"image": "pg", "container_name": "p_db", "ports": ["1:1"]},
...         "api": {"image": "a", "depends_on": ["db"], "environment": {"DB": "p_db:5432"}}},
...         "networks": {"n": {"driver": "bridge"}}}
>>> out = swarm_ready(spec, endpoint_mode="dnsrr")
>>> out["services"]["api"]["environment"], out["services"]["db"]["deploy"]["endpoint_mode"]
({'DB': 'db:5432'}, 'dnsrr')
>>> sorted(out["services"]["db"]), out["networks"]["n"]
(['deploy', 'image'], {'driver': 'overlay', 'attachable': True})
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from revivadiag.errors import LabError, ParameterError

ENDPOINT_MODES = ("vip", "dnsrr")
#: keys of a service that ``docker stack deploy`` ignores or rejects
DROPPED_SERVICE_KEYS = ("container_name", "depends_on", "build", "ports", "profiles", "restart")
STACK_VERSION = "3.8"
DEPLOY_TIMEOUT_S = 120


def swarm_ready(spec: Mapping[str, Any], endpoint_mode: str = "vip",
                replicas: int = 1) -> dict[str, Any]:
    """A copy of compose file ``spec`` that ``docker stack deploy`` runs (module docstring)."""
    if endpoint_mode not in ENDPOINT_MODES:
        raise ParameterError("endpoint_mode", endpoint_mode, "expected vip or dnsrr")
    out: dict[str, Any] = {"version": STACK_VERSION}
    out.update({k: copy.deepcopy(v) for k, v in spec.items() if k != "version"})
    services: dict[str, Any] = out.get("services") or {}
    renames = {str(svc["container_name"]): name for name, svc in services.items()
               if isinstance(svc, dict) and svc.get("container_name")}
    for name, svc in list(services.items()):
        if not isinstance(svc, dict):
            continue
        svc = {k: v for k, v in svc.items() if k not in DROPPED_SERVICE_KEYS}
        if "environment" in svc:
            svc["environment"] = _renamed(svc["environment"], renames)
        deploy = dict(svc.get("deploy") or {})
        deploy["endpoint_mode"] = endpoint_mode
        deploy.setdefault("replicas", replicas)
        svc["deploy"] = deploy
        services[name] = svc
    for name, net in list((out.get("networks") or {}).items()):
        net = dict(net or {})
        if net.get("external"):
            continue
        if net.get("driver", "bridge") == "bridge":
            net["driver"] = "overlay"
            net["attachable"] = True
        out["networks"][name] = net
    return out


def _renamed(env: Any, renames: Mapping[str, str]) -> Any:
    """Environment values with each container name replaced by its service's name.

    Names may be written with ``${VAR}`` references (``${LAB_PREFIX:?}_new_db``): those are
    matched as written.
    """
    if not renames:
        return env
    pattern = re.compile("|".join(re.escape(k) for k in sorted(renames, key=len, reverse=True)))

    def fix(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return pattern.sub(lambda m: renames[m.group(0)], value)

    if isinstance(env, dict):
        return {k: fix(v) for k, v in env.items()}
    if isinstance(env, list):
        return [fix(v) for v in env]
    return env


def write_swarm_ready(files: list[Path], out: Path, endpoint_mode: str = "vip",
                      replicas: int = 1) -> Path:
    """Merge ``files`` (later keys win per service, as Compose does for plain values) and
    write their swarm-ready form to ``out``."""
    merged: dict[str, Any] = {}
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                for name, item in value.items():
                    base = merged[key].get(name)
                    merged[key][name] = ({**base, **item} if isinstance(base, dict)
                                         and isinstance(item, dict) else item)
            else:
                merged[key] = value
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# generated by revivadiag.lab.swarm from "
                   + ", ".join(p.name for p in files) + "\n"
                   + yaml.safe_dump(swarm_ready(merged, endpoint_mode, replicas),
                                    sort_keys=False), encoding="utf-8")
    return out


def stack_deploy(stack: str, compose_file: Path, env: Mapping[str, str],
                 docker_host: str | None = None) -> None:
    """``docker stack deploy -c FILE STACK`` with ``env`` substituted; LabError on failure."""
    _docker(["stack", "deploy", "--prune", "-c", str(compose_file), stack], env, docker_host)


def stack_rm(stack: str, docker_host: str | None = None) -> None:
    """``docker stack rm STACK``."""
    _docker(["stack", "rm", stack], {}, docker_host)


def _docker(args: list[str], env: Mapping[str, str], docker_host: str | None) -> None:
    full = {**os.environ, **env}
    if docker_host:
        full["DOCKER_HOST"] = docker_host
    try:
        proc = subprocess.run(["docker", *args], env=full, capture_output=True, text=True,
                              timeout=DEPLOY_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"docker {args[0]} {args[1]} did not finish in time") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        for value in env.values():  # the secrets come through env: never echo them
            if len(value) >= 6:
                tail = tail.replace(value, "***")
        raise LabError(f"docker {' '.join(args[:2])} failed ({proc.returncode}): {tail}")
