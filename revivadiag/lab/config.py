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

from revivadiag import seed
from revivadiag.errors import ParameterError

#: the seed-shaped stack's variants, then the shop stack's (a second, differently built stack)
SEED_VARIANTS = ("current", "target")
SHOP_VARIANTS = ("shop-current", "shop-target")
VARIANTS = SEED_VARIANTS + SHOP_VARIANTS
PROFILES = ("development", "production")
#: The seed stack's four compose services, in start order (data first, the proxy last).
SERVICES = tuple(seed.SERVICE_OF_ROLE[r] for r in ("database", "cache", "backend", "proxy"))
#: Port each seed service listens on inside its container.
CONTAINER_PORTS: dict[str, int] = dict(seed.SERVICE_PORTS)
#: The seed's host ports (bound to 127.0.0.1).
DEFAULT_HOST_PORTS: dict[str, int] = dict(seed.HOST_PORTS)
DEFAULT_PREFIX = seed.PROJECT
HOST_BIND = "127.0.0.1"
#: Container labels every lab container carries.
LABEL_LAB = "io.revivadiag.lab"
LABEL_VARIANT = "io.revivadiag.variant"
LABEL_PROFILE = "io.revivadiag.profile"
#: Label of a network `lab up` created itself (value: the instance's prefix).
LABEL_PREFIX = "io.revivadiag.lab.prefix"


@dataclass(frozen=True)
class Stack:
    """One of the lab's stacks: its services and their ports.

    ``services`` are the compose services ``lab up`` starts and waits for, in start order;
    ``container_ports`` the port each listening service serves inside its container;
    ``host_ports`` the default host port of every service that can be published.
    """

    name: str
    services: tuple[str, ...]
    container_ports: Mapping[str, int]
    host_ports: Mapping[str, int]


SEED_STACK = Stack("seed", SERVICES, CONTAINER_PORTS, DEFAULT_HOST_PORTS)
#: The shop stack: nginx ``proxy`` (80), ``web`` (3000), ``api`` (8000), ``worker`` (no port),
#: PostgreSQL ``db`` (5432), Redis ``cache`` (6379). Host ports default to the ports public
#: projects of this shape use.
SHOP_STACK = Stack(
    "shop",
    ("db", "cache", "api", "worker", "web", "proxy"),
    {"proxy": 80, "web": 3000, "api": 8000, "db": 5432, "cache": 6379},
    {"proxy": 8080, "web": 3000, "api": 8000, "db": 5432, "cache": 6379},
)


def stack_of(variant: str) -> Stack:
    """The stack a (valid) variant belongs to.

    >>> stack_of("shop-target").name, stack_of("current").name
    ('shop', 'seed')
    """
    return SHOP_STACK if check_variant(variant) in SHOP_VARIANTS else SEED_STACK


def form_of(variant: str) -> str:
    """``current`` or ``target``: the form of a variant within its stack.

    >>> form_of("shop-current"), form_of("target")
    ('current', 'target')
    """
    return check_variant(variant).removeprefix("shop-")


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


def check_port(service: str, port: object, stack: Stack = SEED_STACK) -> int:
    """A valid host port for a publishable service of ``stack``, else ParameterError."""
    if service not in stack.host_ports:
        raise ParameterError("port service", service,
                             f"expected one of {', '.join(stack.host_ports)}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ParameterError(f"{service} port", port, "expected an integer 1..65535")
    return port


def parse_port_option(text: str, variant: str = "current") -> tuple[str, int]:
    """``"frontend=13010"`` -> ``("frontend", 13010)`` for a service of ``variant``'s stack;
    ParameterError on anything else.

    >>> parse_port_option("proxy=18080", "shop-target")
    ('proxy', 18080)
    """
    service, sep, value = text.partition("=")
    if not sep or not value.strip().isdigit():
        raise ParameterError("--port", text, "expected SERVICE=PORT, e.g. frontend=13010")
    return service.strip(), check_port(service.strip(), int(value), stack_of(variant))


def merge_ports(
    overrides: Mapping[str, int] | Iterable[tuple[str, int]] = (), stack: Stack = SEED_STACK
) -> dict[str, int]:
    """The stack's default host ports with ``overrides`` applied; duplicates are a
    ParameterError."""
    ports = dict(stack.host_ports)
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    for service, port in items:
        ports[service] = check_port(service, port, stack)
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
    """One lab instance: ``LabConfig(prefix="demo", variant="current", ...)``.

    ``ports`` maps service -> host port; missing services get the stack's defaults.
    ``publish=False`` publishes no host port at all (any variant).
    Invalid values raise :class:`~revivadiag.errors.ParameterError` at construction.

    >>> shop = LabConfig(prefix="demo", variant="shop-target")
    >>> shop.container_name("api"), shop.published_services, shop.external_networks
    ('demo_api_1', ('proxy',), ('demo_edge',))
    >>> LabConfig(prefix="demo", variant="shop-current", publish=False).published_ports
    {}
    """

    prefix: str = DEFAULT_PREFIX
    variant: str = "current"
    profile: str = "development"
    ports: Mapping[str, int] = field(default_factory=dict)
    publish: bool = True

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_variant(self.variant)
        check_profile(self.profile)
        if not isinstance(self.publish, bool):
            raise ParameterError("publish", self.publish, "expected true or false")
        object.__setattr__(self, "ports", merge_ports(self.ports, self.stack))

    @property
    def stack(self) -> Stack:
        """The stack this instance runs (seed or shop)."""
        return stack_of(self.variant)

    @property
    def services(self) -> tuple[str, ...]:
        """The compose services ``lab up`` starts and waits for, in start order."""
        return self.stack.services

    def container_name(self, service: str) -> str:
        """Seed: ``<prefix>_new_<service>`` in current, ``<prefix>_<service>`` in target.
        Shop: Compose v1's default ``<prefix>_<service>_1`` (no ``container_name:``)."""
        if service not in self.services:
            raise ParameterError("service", service, f"expected one of {', '.join(self.services)}")
        if self.stack is SHOP_STACK:
            return f"{self.prefix}_{service}_1"
        infix = "new_" if self.variant == "current" else ""
        return f"{self.prefix}_{infix}{service}"

    @property
    def container_names(self) -> dict[str, str]:
        """service -> container name."""
        return {s: self.container_name(s) for s in self.services}

    @property
    def published_services(self) -> tuple[str, ...]:
        """Services with a host port. Seed: all four, except target+production (frontend
        only). Shop: current all but the worker, target the proxy only. None without
        ``publish``."""
        if not self.publish:
            return ()
        if self.variant == "shop-target":
            return ("proxy",)
        if self.variant == "shop-current":
            return ("proxy", "web", "api", "db", "cache")
        if self.variant == "target" and self.profile == "production":
            return (seed.SERVICE_OF_ROLE["proxy"],)
        return tuple(self.stack.host_ports)

    @property
    def published_ports(self) -> dict[str, int]:
        """service -> host port, for the services this instance publishes."""
        return {s: self.ports[s] for s in self.published_services}

    @property
    def external_networks(self) -> tuple[str, ...]:
        """Networks ``lab up`` creates before Compose and ``lab down`` removes after it
        (declared ``external: true`` in the compose file)."""
        return (f"{self.prefix}_edge",) if self.stack is SHOP_STACK else ()

    @property
    def networks(self) -> tuple[str, ...]:
        """Docker network names of this instance."""
        if self.variant == "current":
            return (f"{self.prefix}_network",)
        if self.variant == "target":
            return (f"{self.prefix}_frontend_net", f"{self.prefix}_backend_net",
                    f"{self.prefix}_cache_net")
        if self.variant == "shop-current":
            return (f"{self.prefix}_default", *self.external_networks)
        return (f"{self.prefix}_front", f"{self.prefix}_data", f"{self.prefix}_cache",
                *self.external_networks)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (kept in the instance state file)."""
        return {
            "prefix": self.prefix,
            "variant": self.variant,
            "profile": self.profile,
            "ports": dict(self.ports),
            "publish": self.publish,
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
            publish=bool(data.get("publish", True)),
        )
