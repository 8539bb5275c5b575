"""The seed design's own names and ports, kept here as defaults and nowhere else.

The seed (``shared/seed-design.md``) describes one stack: a compose project ``revivatech``
whose services are ``frontend`` (the nginx proxy, 3010), ``backend`` (3011), ``database``
(PostgreSQL, published on 5435) and ``redis`` (published on 6383), with containers named
``<project>_<service>``. revivadiag works on *roles* (proxy, backend, database, cache, worker),
learned from each stack; these values are only

- the fallbacks used when a stack gives no evidence at all,
- the seed's conventions (``<prefix>_<service>`` naming, its host ports), which are judged only
  where a stack *is* the seed's (:func:`is_seed_stack`) or a policy asks for them,
- and the reference lab's first stack, which is the seed's system.

>>> SERVICE_OF_ROLE["proxy"], SERVICE_PORTS["backend"], HOST_PORTS["database"]
('frontend', 3011, 5435)
>>> is_seed_stack({"frontend", "backend", "database", "redis"})
True
>>> is_seed_stack({"web", "api", "db", "cache"})
False
"""

from __future__ import annotations

from collections.abc import Iterable

#: the seed's compose project name (also the lab's default prefix)
PROJECT = "revivatech"

#: role -> the seed's service holding it
SERVICE_OF_ROLE: dict[str, str] = {
    "proxy": "frontend",
    "backend": "backend",
    "database": "database",
    "cache": "redis",
}
#: the seed's service -> its role
ROLE_OF_SERVICE: dict[str, str] = {s: r for r, s in SERVICE_OF_ROLE.items()}

#: port each seed service listens on inside its container
SERVICE_PORTS: dict[str, int] = {
    "frontend": 3010,
    "backend": 3011,
    "database": 5432,
    "redis": 6379,
}
#: the seed's host ports (development publishes all four, production the proxy only)
HOST_PORTS: dict[str, int] = {
    "frontend": 3010,
    "backend": 3011,
    "database": 5435,
    "redis": 6383,
}

#: well-known container ports per role, used only when a stack shows nothing better
ROLE_DEFAULT_PORTS: dict[str, tuple[int, ...]] = {
    "database": (5432, 3306, 27017),
    "cache": (6379, 11211),
}

#: the seed's container naming convention (judged on the seed's stack, or when a policy asks)
NAMING = "{project}_{service}"

#: the health endpoint the seed's backend serves
BACKEND_HEALTH_PATH = "/health"
#: the path the seed's proxy forwards to the backend
API_PREFIX = "/api/"
#: the seed's WebSocket location on the proxy (``NEXT_PUBLIC_WEBSOCKET_URL``'s path)
WEBSOCKET_PATH = "/ws"
#: the seed's end-to-end session test: log in, then read the profile with the session
LOGIN_PATH = "/api/auth/login"
PROFILE_PATH = "/api/user/profile"
#: the user of the seed's end-to-end test (seed design, "Test login through proxy"); tried
#: only when neither the plan nor the environment names credentials, never printed
TEST_USER_EMAIL = "test@example.com"
TEST_USER_PASSWORD = "password"  # noqa: S105 - the seed's published test fixture, not a secret


def is_seed_stack(services: Iterable[str]) -> bool:
    """True when ``services`` are the seed's four (its naming and port conventions apply)."""
    return set(SERVICE_OF_ROLE.values()) <= {str(s) for s in services}
