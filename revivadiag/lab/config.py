"""What a lab instance is: prefix, variant, profile and host ports, validated.

Pure code (no I/O). The names here are the contract other layers rely on:

>>> cfg = LabConfig(prefix="demo", variant="target", profile="production")
>>> cfg.container_name("backend")
'demo_backend'
>>> LabConfig(prefix="demo").container_name("database")
'demo_new_database'
>>> cfg.published_services
('frontend',)
>>> parse_port_option("frontend=13010")
('frontend', 13010)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from revivadiag.errors import ParameterError

VARIANTS = ("current", "target")
PROFILES = ("development", "production")
#: The four compose services, in start order.
SERVICES = ("database", "redis", "backend", "frontend")
#: Port each service listens on inside its container.
CONTAINER_PORTS: dict[str, int] = {
    "frontend": 3010,
    "backend": 3011,
    "database": 5432,
    "redis": 6379,
}
#: The seed's host ports (bound to 127.0.0.1).
DEFAULT_HOST_PORTS: dict[str, int] = {
    "frontend": 3010,
    "backend": 3011,
    "database": 5435,
    "redis": 6383,
}
DEFAULT_PREFIX = "revivatech"
HOST_BIND = "127.0.0.1"
#: Container labels every lab container carries.
LABEL_LAB = "io.revivadiag.lab"
LABEL_VARIANT = "io.revivadiag.variant"
LABEL_PROFILE = "io.revivadiag.profile"

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,29}$")


def check_variant(variant: str) -> str:
    """``variant`` if known, else ParameterError."""
    if variant not in VARIANTS:
        raise ParameterError("variant", variant, f"expected one of {', '.join(VARIANTS)}")
    return variant


def check_profile(profile: str) -> str:
    """``profile`` if known, else ParameterError."""
    if profile not in PROFILES:
        raise ParameterError("profile", profile, f"expected one of {', '.join(PROFILES)}")
    return profile


def check_prefix(prefix: str) -> str:
    """A prefix usable as compose project and container-name prefix, else ParameterError."""
    if not _PREFIX_RE.match(prefix):
        raise ParameterError(
            "prefix", prefix, "expected a lowercase letter then up to 29 lowercase letters/digits"
        )
    return prefix


def check_port(service: str, port: object) -> int:
    """A valid host port for a known service, else ParameterError."""
    if service not in CONTAINER_PORTS:
        raise ParameterError("port service", service, f"expected one of {', '.join(SERVICES)}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ParameterError(f"{service} port", port, "expected an integer 1..65535")
    return port


def parse_port_option(text: str) -> tuple[str, int]:
    """``"frontend=13010"`` -> ``("frontend", 13010)``; ParameterError on anything else."""
    service, sep, value = text.partition("=")
    if not sep or not value.strip().isdigit():
        raise ParameterError("--port", text, "expected SERVICE=PORT, e.g. frontend=13010")
    return service.strip(), check_port(service.strip(), int(value))


def merge_ports(overrides: Mapping[str, int] | Iterable[tuple[str, int]] = ()) -> dict[str, int]:
    """The default host ports with ``overrides`` applied; duplicates are a ParameterError."""
    ports = dict(DEFAULT_HOST_PORTS)
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for service, port in items:
        ports[service] = check_port(service, port)
    seen: dict[int, str] = {}
    for service, port in ports.items():
        if port in seen:
            raise ParameterError(
                f"{service} port", port, f"already used by {seen[port]} in the same lab"
            )
        seen[port] = service
    return ports


@dataclass(frozen=True)
class LabConfig:
    """One lab instance: ``LabConfig(prefix="revivatech", variant="current", ...)``.

    ``ports`` maps service -> host port; missing services get the seed's defaults.
    Invalid values raise :class:`~revivadiag.errors.ParameterError` at construction.
    """

    prefix: str = DEFAULT_PREFIX
    variant: str = "current"
    profile: str = "development"
    ports: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_variant(self.variant)
        check_profile(self.profile)
        object.__setattr__(self, "ports", merge_ports(self.ports))

    def container_name(self, service: str) -> str:
        """``<prefix>_new_<service>`` in current, ``<prefix>_<service>`` in target."""
        if service not in CONTAINER_PORTS:
            raise ParameterError("service", service, f"expected one of {', '.join(SERVICES)}")
        infix = "new_" if self.variant == "current" else ""
        return f"{self.prefix}_{infix}{service}"

    @property
    def container_names(self) -> dict[str, str]:
        """service -> container name."""
        return {s: self.container_name(s) for s in SERVICES}

    @property
    def published_services(self) -> tuple[str, ...]:
        """Services with a host port: all four, except target+production (frontend only)."""
        if self.variant == "target" and self.profile == "production":
            return ("frontend",)
        return tuple(s for s in ("frontend", "backend", "database", "redis"))

    @property
    def published_ports(self) -> dict[str, int]:
        """service -> host port, for the services this instance publishes."""
        return {s: self.ports[s] for s in self.published_services}

    @property
    def networks(self) -> tuple[str, ...]:
        """Docker network names of this instance."""
        if self.variant == "current":
            return (f"{self.prefix}_network",)
        return (f"{self.prefix}_frontend_net", f"{self.prefix}_backend_net",
                f"{self.prefix}_cache_net")

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (kept in the instance state file)."""
        return {
            "prefix": self.prefix,
            "variant": self.variant,
            "profile": self.profile,
            "ports": dict(self.ports),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LabConfig:
        """Inverse of :meth:`to_dict`."""
        ports = data.get("ports") or {}
        if not isinstance(ports, Mapping):
            raise ParameterError("ports", ports, "expected a mapping service -> port")
        return cls(
            prefix=str(data.get("prefix", DEFAULT_PREFIX)),
            variant=str(data.get("variant", "current")),
            profile=str(data.get("profile", "development")),
            ports={str(k): int(v) for k, v in ports.items()},
        )
