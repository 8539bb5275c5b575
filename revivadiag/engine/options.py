"""The engine options every command that talks to engines shares (no heavy imports: the
CLI parses them before anything is loaded).

    --docker-host URL   repeatable: unix://, tcp://, ssh:// (several engines at once)
    --context NAME      repeatable: a Docker context (docker context ls)
    --ssh-config FILE   ssh_config for ssh:// engines (host, port, user, key, known_hosts)

A command calls :func:`add_engine_options` on its parser and :func:`engines_from_args` on the
parsed arguments: an empty list means none was named (use DOCKER_HOST or the local socket).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from revivadiag.errors import ParameterError

if TYPE_CHECKING:
    from revivadiag.engine.engines import EngineSpec

#: environment variable naming the ssh_config file for ssh:// engines
SSH_CONFIG_ENV = "REVIVADIAG_SSH_CONFIG"


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--docker-host URL`` (repeatable), ``--context NAME`` (repeatable), ``--ssh-config``."""
    group = parser.add_argument_group("engines")
    group.add_argument("--docker-host", metavar="URL", action="append", default=None,
                       dest="docker_hosts",
                       help="engine address (unix://, tcp://, ssh://); repeat for several "
                            "engines; default DOCKER_HOST, else the local socket")
    group.add_argument("--context", metavar="NAME", action="append", default=None,
                       dest="contexts", help="a Docker context (docker context ls); repeatable")
    group.add_argument("--ssh-config", metavar="FILE", type=Path, default=None,
                       help=f"ssh_config for ssh:// engines (default ${SSH_CONFIG_ENV}, else "
                            "~/.ssh/config)")


def engines_from_args(args: argparse.Namespace) -> list[EngineSpec]:
    """The engines the options of :func:`add_engine_options` name; empty when none was given
    (the caller then uses its single default engine)."""
    hosts = list(getattr(args, "docker_hosts", None) or [])
    contexts = list(getattr(args, "contexts", None) or [])
    ssh_config = getattr(args, "ssh_config", None)
    if ssh_config is not None and not Path(ssh_config).is_file():
        raise ParameterError("ssh config", str(ssh_config), "no such file")
    if not hosts and not contexts:
        return []
    from revivadiag.engine.engines import resolve_engines

    return resolve_engines(hosts, contexts, ssh_config)
