"""The frames the engine's API answers alone, from one :class:`RawInventory`.

The snapshot builds them first (every probe frame starts from them); ``revivadiag
diagnose`` builds them too, from the inventory it reads for the project's secrets, to ask
Compose about the project while the runbook's kernel boots
(:mod:`revivadiag.runbook.prefetch`).
"""

from __future__ import annotations

import pandas as pd

from revivadiag.collect.containers import parse_containers, parse_ports
from revivadiag.collect.env import parse_env
from revivadiag.collect.inventory import RawInventory
from revivadiag.collect.networks import parse_endpoints, parse_networks
from revivadiag.redact import Scrubber


def api_frames(inv: RawInventory, scrubber: Scrubber) -> dict[str, pd.DataFrame]:
    """containers, networks, endpoints, ports and env (values scrubbed by ``scrubber``)."""
    return {
        "containers": parse_containers(inv.containers, inv.vanished, inv.project),
        "networks": parse_networks(inv.networks),
        "endpoints": parse_endpoints(inv.containers, inv.project),
        "ports": parse_ports(inv.containers, inv.project),
        "env": parse_env(inv.containers, inv.project, scrubber),
    }
