"""Several engines at once: how each is named, found and connected.

An :class:`EngineSpec` is one engine to snapshot: an address (``unix://``, ``tcp://``,
``ssh://``) or a Docker context (``docker context ls``), a name for its rows (the context's
name, else the address with credentials removed) and a concurrency budget (the requests in
flight to it: docker-py's connection pool size, and over ssh the channels on its one
connection). :func:`open_engine` gives one long-lived client per engine;
:func:`add_engine_options` / :func:`engines_from_args` are the command-line side, shared by
every command that talks to engines (``snapshot``, ``diagnose``, ``monitor``).

>>> [s.name for s in resolve_engines(["tcp://10.0.0.5:2375", "ssh://ops@db1"])]
['tcp://10.0.0.5:2375', 'ssh://ops@db1']
>>> resolve_engines(["ftp://x"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
revivadiag.errors.ParameterError: bad docker host 'ftp://x': ...
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import docker
import docker.errors

from revivadiag.engine.client import _short, connect, engine_address
from revivadiag.errors import ParameterError
from revivadiag.redact import redact_url

SCHEMES = ("unix", "tcp", "ssh", "npipe")
#: requests in flight to one engine (docker-py's pool; over ssh, channels on one connection,
#: kept below sshd's default MaxSessions of 10)
DEFAULT_BUDGET = 8


@dataclass(frozen=True)
class EngineSpec:
    """One engine to reach; see the module docstring."""

    address: str
    name: str = ""
    #: ssh_config file for ssh:// (default ~/.ssh/config)
    ssh_config: Path | None = None
    budget: int = DEFAULT_BUDGET

    @property
    def label(self) -> str:
        """The engine's name in frames: its own name, else its redacted address."""
        return self.name or redact_url(self.address)


def check_address(address: str) -> str:
    """``address`` when its scheme is one docker-py speaks, else ParameterError."""
    scheme = urlsplit(address).scheme
    if scheme not in SCHEMES or not address.split("://", 1)[-1]:
        raise ParameterError("docker host", address,
                             f"expected {', '.join(s + '://' for s in SCHEMES)} with an address")
    return address


def context_address(name: str) -> str:
    """The Docker endpoint of context ``name`` (``docker context inspect``).

    ParameterError when no such context exists.
    """
    from docker.context import ContextAPI

    try:
        ctx = ContextAPI.get_context(name)
    except docker.errors.DockerException as exc:
        raise ParameterError("context", name, f"unreadable: {_short(exc)}") from exc
    if ctx is None:
        known = sorted(c.name for c in ContextAPI.contexts())
        raise ParameterError("context", name, f"no such Docker context (known: "
                             f"{', '.join(known) or 'none'})")
    host = ctx.Host or engine_address(None)
    return str(host)


def resolve_engines(hosts: Sequence[str] = (), contexts: Sequence[str] = (),
                    ssh_config: Path | None = None,
                    budget: int = DEFAULT_BUDGET) -> list[EngineSpec]:
    """EngineSpecs for ``hosts`` (addresses) and ``contexts`` (context names), in that order;
    the same engine named twice is kept once. Raises ParameterError for a bad address or an
    unknown context."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ParameterError("engine budget", budget, "expected an integer >= 1")
    specs = [EngineSpec(check_address(h), "", ssh_config, budget) for h in hosts]
    specs += [EngineSpec(check_address(context_address(c)), c, ssh_config, budget)
              for c in contexts]
    seen: dict[str, EngineSpec] = {}
    for spec in specs:
        seen.setdefault(spec.address, spec)
    labels = [s.label for s in seen.values()]
    if len(set(labels)) != len(labels):
        raise ParameterError("engines", labels, "two engines would carry the same name")
    return list(seen.values())


def as_specs(engines: Sequence[str | EngineSpec]) -> list[EngineSpec]:
    """Addresses or specs -> specs (the API's ``snapshot(engines=[...])``)."""
    out: list[EngineSpec] = []
    for item in engines:
        if isinstance(item, EngineSpec):
            out.append(item)
        elif isinstance(item, str):
            out += resolve_engines([item])
        else:
            raise ParameterError("engine", item, "expected an address or an EngineSpec")
    return out


def open_engine(spec: EngineSpec, timeout_s: float = 10.0) -> docker.DockerClient:
    """One long-lived client for ``spec``, with at most ``spec.budget`` requests in flight.

    Raises EngineUnreachable naming the (redacted) address when it does not answer.
    """
    return connect(spec.address, timeout_s=timeout_s, max_pool_size=spec.budget,
                   ssh_config=spec.ssh_config)


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
                       help="ssh_config for ssh:// engines (default ~/.ssh/config)")


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
    return resolve_engines(hosts, contexts, ssh_config)
