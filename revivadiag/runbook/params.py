"""Parameters of the diagnose runbook: names, defaults, types, and parsing of ``-p NAME VALUE``.

The ``parameters`` cell of ``runbooks/diagnose.ipynb`` holds exactly :data:`DIAGNOSE` with
these defaults (a unit test compares them). An empty string means "work it out":
``project`` from ``$REVIVADIAG_PROJECT`` or the only running compose project (else
the seed's project), ``docker_host`` from ``$DOCKER_HOST`` or the local socket, ``policy_file``
the seed's access matrix in roles, ``compose_file`` the files named by the containers' labels.

>>> coerce("samples", "5"), coerce("live", "no"), coerce("project", "demo")
(5, False, 'demo')
>>> parse_pairs([("samples", "x")])  # doctest: +ELLIPSIS
Traceback (most recent call last):
revivadiag.errors.ParameterError: bad samples 'x': expected an integer >= 1
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from revivadiag.errors import ParameterError

PROJECT_ENV = "REVIVADIAG_PROJECT"
ENVIRONMENTS = ("development", "production")
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


@dataclass(frozen=True)
class Parameter:
    """One runbook parameter: name, default (its type is the parameter's type), meaning."""

    name: str
    default: str | int | bool
    help: str


DIAGNOSE: tuple[Parameter, ...] = (
    Parameter("project", "", f"compose project or lab prefix; empty: ${PROJECT_ENV} or auto"),
    Parameter("environment", "development", "development or production (allowed host ports)"),
    Parameter("policy_file", "", "access policy YAML; empty: the seed's access matrix"),
    Parameter("samples", 20, "HTTP samples per latency path"),
    Parameter("docker_host", "", "engine URL (unix://, tcp://, ssh://), or several and Docker "
                                 "context names, comma-separated; empty: $DOCKER_HOST"),
    Parameter("live", True, "talk to the proxy: connection reuse, page, WebSocket, burst"),
    Parameter("source_path", "", "source tree to audit for hard-coded URLs; empty: skip"),
    Parameter("compose_file", "", "compose file(s), comma-separated; empty: from the labels"),
)


def defaults(spec: Iterable[Parameter] = DIAGNOSE) -> dict[str, Any]:
    """name -> default value."""
    return {p.name: p.default for p in spec}


def coerce(name: str, text: str, spec: Iterable[Parameter] = DIAGNOSE) -> Any:
    """The value of ``-p name text``, typed like the parameter's default."""
    by_name = {p.name: p for p in spec}
    if name not in by_name:
        raise ParameterError("parameter", name, f"expected one of {', '.join(by_name)}")
    default = by_name[name].default
    if isinstance(default, bool):
        folded = text.strip().lower()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
        raise ParameterError(name, text, "expected true or false")
    if isinstance(default, int):
        try:
            value = int(text)
        except ValueError:
            raise ParameterError(name, text, "expected an integer >= 1") from None
        if value < 1:
            raise ParameterError(name, text, "expected an integer >= 1")
        return value
    return text


def parse_pairs(
    pairs: Iterable[tuple[str, str]] | Iterable[list[str]], spec: Iterable[Parameter] = DIAGNOSE
) -> dict[str, Any]:
    """``-p NAME VALUE`` pairs as typed values (later pairs win)."""
    items = list(spec)
    return {str(name): coerce(str(name), str(value), items) for name, value in pairs}


@dataclass(frozen=True)
class DiagnoseParams:
    """The diagnose runbook's parameters, checked, with the empty defaults worked out."""

    project: str = ""
    environment: str = "development"
    policy_file: str = ""
    samples: int = 20
    docker_host: str = ""
    live: bool = True
    source_path: str = ""
    compose_file: str = ""

    def __post_init__(self) -> None:
        if self.environment not in ENVIRONMENTS:
            raise ParameterError(
                "environment", self.environment, f"expected one of {', '.join(ENVIRONMENTS)}"
            )
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ParameterError("samples", self.samples, "expected an integer >= 1")

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, **values: Any) -> DiagnoseParams:
        """From the notebook's variables: unknown names are an error, ``project`` falls back
        to ``$REVIVADIAG_PROJECT``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ParameterError(
                "parameter", unknown[0], f"expected one of {', '.join(sorted(known))}"
            )
        env = os.environ if environ is None else environ
        if not values.get("project"):
            values["project"] = env.get(PROJECT_ENV, "")
        return cls(**values)

    @property
    def project_or_none(self) -> str | None:
        """The project, or None to let the snapshot choose."""
        return self.project or None

    @property
    def docker_host_or_none(self) -> str | None:
        """The engine address, or None for $DOCKER_HOST / the local socket."""
        return self.docker_host or None

    @property
    def engines(self) -> list[Any] | None:
        """EngineSpecs when ``docker_host`` names several engines or a context (comma-
        separated; entries without ``://`` are context names), else None (one engine)."""
        from revivadiag.engine.engines import is_engine_list, parse_engine_list

        if not self.docker_host or not is_engine_list(self.docker_host):
            return None
        return list(parse_engine_list(self.docker_host))

    @property
    def first_engine(self) -> str | None:
        """The address of the first engine named (what the live checks use), or None."""
        engines = self.engines
        return engines[0].address if engines else self.docker_host_or_none

    @property
    def compose_files(self) -> list[str]:
        """``compose_file`` split on commas (empty list: use the containers' labels)."""
        return [p.strip() for p in self.compose_file.split(",") if p.strip()]

    def as_dict(self) -> dict[str, Any]:
        """name -> value, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
