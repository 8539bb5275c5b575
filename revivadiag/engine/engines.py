"""Several engines at once: how each is named, found and connected.

An :class:`EngineSpec` is one engine to snapshot: an address (``unix://``, ``tcp://``,
``ssh://``) or a Docker context (``docker context ls``), a name for its rows (the context's
name, else the address with credentials removed) and a concurrency budget (the requests in
flight to it: docker-py's connection pool size, and over ssh the channels on its one
connection). :func:`open_engine` gives one long-lived client per engine;
:func:`add_engine_options` / :func:`engines_from_args` are the command-line side, shared by
every command that talks to engines (``snapshot``, ``diagnose``, ``monitor``), live in
:mod:`revivadiag.engine.options`.

>>> [s.label for s in resolve_engines(["tcp://10.0.0.5:2375", "ssh://ops@db1"])]
['tcp://10.0.0.5:2375', 'ssh://ops@db1']
>>> resolve_engines(["ftp://x"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
revivadiag.errors.ParameterError: bad docker host 'ftp://x': ...
"""

from __future__ import annotations

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


def parse_engine_list(text: str, ssh_config: Path | None = None) -> list[EngineSpec]:
    """Engines from one comma-separated parameter: entries with ``://`` are addresses, the
    others Docker context names (the diagnose runbook's ``docker_host``).

    >>> [s.address for s in parse_engine_list("tcp://127.0.0.1:2375, ssh://db1")]
    ['tcp://127.0.0.1:2375', 'ssh://db1']
    """
    items = [t.strip() for t in text.split(",") if t.strip()]
    return resolve_engines([t for t in items if "://" in t], [t for t in items if "://" not in t],
                           ssh_config)


def is_engine_list(text: str) -> bool:
    """True when ``text`` names several engines or a context (not one plain address).

    >>> is_engine_list("unix:///var/run/docker.sock"), is_engine_list("a,tcp://b:1")
    (False, True)
    """
    items = [t.strip() for t in text.split(",") if t.strip()]
    return len(items) > 1 or any("://" not in t for t in items)


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


def open_engine(spec: EngineSpec, timeout_s: float | None = None) -> docker.DockerClient:
    """One long-lived client for ``spec``, with at most ``spec.budget`` requests in flight.

    ``timeout_s``: per request; default 10 s, 30 s over ssh:// (each new channel starts
    ``docker system dial-stdio`` on the far side). Raises EngineUnreachable naming the
    (redacted) address when it does not answer.
    """
    if timeout_s is None:
        timeout_s = 30.0 if spec.address.startswith("ssh://") else 10.0
    return connect(spec.address, timeout_s=timeout_s, max_pool_size=spec.budget,
                   ssh_config=spec.ssh_config)
