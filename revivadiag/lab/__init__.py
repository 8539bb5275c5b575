"""The reference lab: a Compose stack shaped like the seed's system, in two variants.

>>> from revivadiag import lab                                    # doctest: +SKIP
>>> lab.build_images().summary()                                  # doctest: +SKIP
>>> inst = lab.up(lab.LabConfig(prefix="demo", variant="target")) # doctest: +SKIP
>>> inst.url("/api/health"), inst.containers["backend"]           # doctest: +SKIP
('http://127.0.0.1:3010/api/health', 'demo_backend')
>>> lab.status("demo"); lab.down("demo", volumes=True)            # doctest: +SKIP

See config.py (names, ports, labels), images.py (building without a registry),
compose/ (the two variants), lifecycle.py (up/down/status) and state.py (secrets).
"""

from revivadiag.lab.config import (
    CONTAINER_PORTS,
    DEFAULT_HOST_PORTS,
    DEFAULT_PREFIX,
    PROFILES,
    SERVICES,
    VARIANTS,
    LabConfig,
)
from revivadiag.lab.images import BuildReport, ImageResult, build_images
from revivadiag.lab.lifecycle import LabInstance, down, pick_free_ports, port_is_free, status, up
from revivadiag.lab.state import read_secrets

__all__ = [
    "CONTAINER_PORTS",
    "DEFAULT_HOST_PORTS",
    "DEFAULT_PREFIX",
    "PROFILES",
    "SERVICES",
    "VARIANTS",
    "BuildReport",
    "ImageResult",
    "LabConfig",
    "LabInstance",
    "build_images",
    "down",
    "pick_free_ports",
    "port_is_free",
    "read_secrets",
    "status",
    "up",
]
