"""The reference lab: two Compose stacks, each in a current and a target variant.

The seed stack (variants ``current``, ``target``) is shaped like the seed's system; the shop
stack (``shop-current``, ``shop-target``) like common public projects: nginx ``proxy`` (80),
``web`` (3000), aiohttp ``api`` (8000), a ``worker`` with no port and no healthcheck, PostgreSQL
``db`` and Redis ``cache``, Compose's default container names and no role labels.
``LabConfig(publish=False)`` (``lab up --no-publish``) publishes no host port in any variant.

>>> from revivadiag import lab
>>> lab.build_images().summary()                                  # doctest: +SKIP
>>> inst = lab.up(lab.LabConfig(prefix="demo", variant="target")) # doctest: +SKIP
>>> inst.url("/api/health"), inst.containers["backend"]           # doctest: +SKIP
('http://127.0.0.1:3010/api/health', 'demo_backend')
>>> lab.status("demo"); lab.down("demo", volumes=True)            # doctest: +SKIP

See config.py (names, ports, labels), images.py (building without a registry),
compose/ (the seed's two variants; compose/shop/ the shop's), lifecycle.py (up/down/status)
and state.py (secrets).

Behaviour that probes and runbooks should know:

- target's proxy rate-limits ``/api/`` and ``/api/auth/`` per client address (30 r/s, burst
  20, then 429); ``/api/debug/`` and ``/ws`` are not limited, so latency sampling should use
  ``/api/debug/echo`` or ``/api/debug/delay?ms=0`` (or pace itself). current has no limit.
- current's proxy resolves the backend's name once at start: recreate the backend with a new
  address and it answers 502/504 until the frontend restarts. target's re-resolves every 5 s.
- ``/api/debug/echo`` returns the headers the backend received (Authorization and Cookie
  masked); current proxies with HTTP/1.0 + ``Connection: close`` and appends the client's
  X-Forwarded-For, target uses HTTP/1.1 keep-alive and sets X-Forwarded-For to the peer.
- Backend env carries ``DATABASE_URL`` with the password in it: redact at collection.
- shop: the proxy serves ``/healthz`` itself, forwards ``/api/`` to ``api:8000/`` (prefix
  stripped: the api's own paths are ``/healthz``, ``/items``, ``/jobs``, ``/echo``) and ``/`` to
  ``web:3000``. shop-current's proxy resolves both names once; shop-target's re-resolves the
  api every 10 s (variable ``proxy_pass``, no connection pool) and pools connections to web
  (upstream ``keepalive``, resolved once). api and worker carry ``DATABASE_URL`` and
  ``REDIS_URL`` with passwords; the worker reaches PostgreSQL through its alias ``postgres``.
"""

from revivadiag.lab.config import (
    CONTAINER_PORTS,
    DEFAULT_HOST_PORTS,
    DEFAULT_PREFIX,
    PROFILES,
    SEED_STACK,
    SERVICES,
    SHOP_STACK,
    VARIANTS,
    LabConfig,
    Stack,
)
from revivadiag.lab.images import BuildReport, ImageResult, build_images
from revivadiag.lab.lifecycle import LabInstance, down, pick_free_ports, status, up
from revivadiag.lab.state import read_secrets

__all__ = [
    "CONTAINER_PORTS",
    "DEFAULT_HOST_PORTS",
    "DEFAULT_PREFIX",
    "PROFILES",
    "SEED_STACK",
    "SERVICES",
    "SHOP_STACK",
    "VARIANTS",
    "BuildReport",
    "ImageResult",
    "LabConfig",
    "LabInstance",
    "Stack",
    "build_images",
    "down",
    "pick_free_ports",
    "read_secrets",
    "status",
    "up",
]
