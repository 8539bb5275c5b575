"""Per-instance state on the local disk: generated secrets and the instance's config.

Layout (``$REVIVADIAG_STATE_DIR`` or ``~/.local/state/revivadiag``)::

    labs/<prefix>/secrets.env     DATABASE_PASSWORD, REDIS_PASSWORD, JWT_SECRET (mode 0600)
    labs/<prefix>/instance.json   variant, profile, host ports of the running instance
    build.lock                    serialises concurrent `lab build`s

Secrets are generated once per instance with :mod:`secrets` and reused while its data
volume lives (PostgreSQL keeps the password it was initialised with); ``lab down
--volumes`` deletes the whole instance directory. Nothing here is ever written in the repo.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from revivadiag.errors import LabError
from revivadiag.lab.config import LabConfig, check_prefix

SECRET_KEYS = ("DATABASE_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET")


def state_root() -> Path:
    """The base state directory (``$REVIVADIAG_STATE_DIR`` or ``~/.local/state/revivadiag``)."""
    env = os.environ.get("REVIVADIAG_STATE_DIR")
    return Path(env) if env else Path.home() / ".local" / "state" / "revivadiag"


def instance_dir(prefix: str) -> Path:
    """Directory holding one instance's files."""
    return state_root() / "labs" / check_prefix(prefix)


def generate_secrets() -> dict[str, str]:
    """Fresh random values for every key in SECRET_KEYS (URL- and SQL-safe characters)."""
    return {
        "DATABASE_PASSWORD": secrets.token_urlsafe(24),
        "REDIS_PASSWORD": secrets.token_urlsafe(24),
        "JWT_SECRET": secrets.token_urlsafe(48),
    }


def format_env(values: dict[str, str]) -> str:
    """``KEY=value`` lines (values are token_urlsafe output: no quoting needed)."""
    return "".join(f"{k}={v}\n" for k, v in values.items())


def parse_env(text: str) -> dict[str, str]:
    """Inverse of :func:`format_env`; blank lines and ``#`` comments are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def ensure_secrets(prefix: str) -> dict[str, str]:
    """The instance's secrets, generated (and stored with mode 0600) when missing."""
    path = instance_dir(prefix) / "secrets.env"
    if path.exists():
        values = parse_env(path.read_text(encoding="utf-8"))
        if all(values.get(k) for k in SECRET_KEYS):
            return values
    values = generate_secrets()
    _write_private(path, format_env(values))
    return values


def read_secrets(prefix: str) -> dict[str, str]:
    """The stored secrets of an instance (for tests and collectors that must authenticate)."""
    path = instance_dir(prefix) / "secrets.env"
    if not path.exists():
        raise LabError(f"no secrets for lab {prefix!r} (expected {path}); is it up?")
    return parse_env(path.read_text(encoding="utf-8"))


def save_config(config: LabConfig) -> None:
    """Remember variant, profile and ports of a started instance."""
    _write_private(instance_dir(config.prefix) / "instance.json", json.dumps(config.to_dict()))


def load_config(prefix: str) -> LabConfig | None:
    """The remembered config of an instance, or None."""
    path = instance_dir(prefix) / "instance.json"
    if not path.exists():
        return None
    return LabConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))


def forget(prefix: str) -> None:
    """Delete the instance's directory (secrets included)."""
    shutil.rmtree(instance_dir(prefix), ignore_errors=True)
