"""Running Compose for the lab: the ``docker compose`` plugin where it exists, else
``docker-compose`` (1.29 here).

The compose files live in ``revivadiag/lab/compose/``; every value that differs between
instances (prefix, host ports, profile, secrets) reaches Compose through the subprocess
environment, so no secret is ever written to a file outside the instance's state dir.

>>> compose_files("target", "production")[-1].name
'target.yml'
>>> [p.name for p in compose_files("target", "development")]
['target.yml', 'target.development.yml']
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from revivadiag.errors import LabError
from revivadiag.lab.config import LabConfig
from revivadiag.redact import Scrubber

COMPOSE_DIR = Path(__file__).parent / "compose"
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
    files = [COMPOSE_DIR / f"{variant}.yml"]
    override = COMPOSE_DIR / f"{variant}.{profile}.yml"
    if override.exists():
        files.append(override)
    return files


def compose_env(config: LabConfig, secrets: dict[str, str]) -> dict[str, str]:
    """Variables the compose files substitute (merged over the caller's environment)."""
    return {
        "LAB_PREFIX": config.prefix,
        "APP_ENV": config.profile,
        "FRONTEND_HOST_PORT": str(config.ports["frontend"]),
        "BACKEND_HOST_PORT": str(config.ports["backend"]),
        "DATABASE_HOST_PORT": str(config.ports["database"]),
        "REDIS_HOST_PORT": str(config.ports["redis"]),
        "HEALTH_INTERVAL": HEALTH_INTERVAL,
        **secrets,
    }


def compose_argv(config: LabConfig, *args: str) -> list[str]:
    """``<compose> -p <prefix> -f <file>... <args>``."""
    files = [a for f in compose_files(config.variant, config.profile) for a in ("-f", str(f))]
    return [*compose_command(), "-p", config.prefix, *files, *args]


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
