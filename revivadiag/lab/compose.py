"""Running Compose for the lab: the ``docker compose`` plugin where it exists, else
``docker-compose`` (1.29 here).

The compose files live in ``revivadiag/lab/compose/``; every value that differs between
instances (prefix, host ports, profile, secrets) reaches Compose through the subprocess
environment, so no secret is ever written to a file outside the instance's state dir.

>>> compose_files("target", "production")[-1].name
'target.yml'
>>> [p.name for p in compose_files("target", "development")]
['target.yml', 'target.development.yml']
>>> compose_files("shop-current", "development")[0].relative_to(COMPOSE_DIR).as_posix()
'shop/current.yml'

The shop stack's files are in ``compose/shop/`` (its project directory: the nginx site and
``shop.env`` are found relative to it). ``LabConfig(publish=False)`` runs copies of the
variant's files with every ``ports:`` removed, kept in the instance's state dir and run with
``--project-directory`` set to the originals' directory (Compose merges ``ports`` across files
additively, so no override could remove them).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from revivadiag.errors import LabError
from revivadiag.lab import state
from revivadiag.lab.config import SHOP_STACK, LabConfig, form_of, stack_of
from revivadiag.redact import Scrubber

COMPOSE_DIR = Path(__file__).parent / "compose"
SHOP_DIR = COMPOSE_DIR / "shop"
COMPOSE_TIMEOUT_S = 180
#: Healthcheck interval of every lab service (kept short so `lab up` returns quickly).
HEALTH_INTERVAL = "2s"


@functools.cache
def compose_command() -> tuple[str, ...]:
    """``("docker", "compose")`` when the plugin answers, else ``("docker-compose",)``."""
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ("docker", "compose")
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    raise LabError("neither the `docker compose` plugin nor `docker-compose` is installed")


def compose_files(variant: str, profile: str) -> list[Path]:
    """The files for a variant and profile (base first, then the profile's override)."""
    directory = SHOP_DIR if stack_of(variant) is SHOP_STACK else COMPOSE_DIR
    stem = form_of(variant) if directory is SHOP_DIR else variant
    files = [directory / f"{stem}.yml"]
    override = directory / f"{stem}.{profile}.yml"
    if override.exists():
        files.append(override)
    return files


def without_ports(data: Any) -> Any:
    """A parsed compose file with every service's ``ports`` dropped (and services or files
    left empty by that dropped too).

    >>> without_ports({"services": {"a": {"image": "x", "ports": ["1:1"]}, "b": {"ports": []}}})
    {'services': {'a': {'image': 'x'}}}
    """
    if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
        return data
    services = {}
    for name, spec in data["services"].items():
        if isinstance(spec, dict):
            spec = {k: v for k, v in spec.items() if k != "ports"}
            if not spec:
                continue
        services[name] = spec
    return {**data, "services": services}


def unpublished_files(config: LabConfig) -> list[Path]:
    """Copies of the config's compose files without ``ports``, written to the instance's
    state dir (no secret is in them: values stay ``${...}`` references)."""
    out_dir = state.instance_dir(config.prefix) / "compose"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for path in compose_files(config.variant, config.profile):
        data = without_ports(yaml.safe_load(path.read_text(encoding="utf-8")))
        if not data.get("services"):
            continue
        target = out_dir / path.name
        target.write_text(
            f"# {path.name} of lab variant {config.variant} without its ports (lab up "
            "--no-publish)\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        out.append(target)
    return out


def compose_env(config: LabConfig, secrets: dict[str, str]) -> dict[str, str]:
    """Variables the compose files substitute (merged over the caller's environment): the
    prefix, profile, ``<SERVICE>_HOST_PORT`` of every publishable service, the shop's
    ``EDGE_NETWORK``, the healthcheck interval and the secrets.

    >>> env = compose_env(LabConfig(prefix="p", variant="shop-target"), {})
    >>> env["EDGE_NETWORK"], env["PROXY_HOST_PORT"]
    ('p_edge', '8080')
    """
    ports = {f"{s.upper()}_HOST_PORT": str(p) for s, p in config.ports.items()}
    edge = {"EDGE_NETWORK": config.external_networks[0]} if config.external_networks else {}
    return {
        "LAB_PREFIX": config.prefix,
        "APP_ENV": config.profile,
        **ports,
        **edge,
        "HEALTH_INTERVAL": HEALTH_INTERVAL,
        **secrets,
    }


def compose_argv(config: LabConfig, *args: str) -> list[str]:
    """``<compose> -p <prefix> [--project-directory D] -f <file>... <args>``."""
    originals = compose_files(config.variant, config.profile)
    if config.publish:
        files, project_dir = originals, []
    else:
        files = unpublished_files(config)
        project_dir = ["--project-directory", str(originals[0].parent)]
    file_args = [a for f in files for a in ("-f", str(f))]
    return [*compose_command(), "-p", config.prefix, *project_dir, *file_args, *args]


def run_compose(
    config: LabConfig, secrets: dict[str, str], *args: str, timeout_s: float = COMPOSE_TIMEOUT_S
) -> str:
    """Run one compose command; LabError with a secret-free tail of its output on failure."""
    env = {**os.environ, **compose_env(config, secrets)}
    env.pop("COMPOSE_FILE", None)  # never let the caller's environment pick other files
    env.pop("COMPOSE_PROJECT_NAME", None)
    try:
        proc = subprocess.run(
            compose_argv(config, *args), env=env, capture_output=True, text=True,
            timeout=timeout_s, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"compose {args[0]} did not finish within {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        scrub = Scrubber(secrets.values())
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise LabError(f"compose {' '.join(args)} failed ({proc.returncode}):\n{scrub.scrub(tail)}")
    return proc.stdout
