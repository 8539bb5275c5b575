"""The ``containers`` and ``ports`` frames, parsed from container inspect dicts.

Compose project, service and number come from the ``com.docker.compose.*`` labels; when a
label is missing they are parsed from the name, in either Compose v1 form
(``project_service_1``) or v2 form (``project-service-1``).

>>> parse_compose_name("shop_api_1")
('shop', 'api', 1)
>>> parse_compose_name("shop-api-2", project="shop")
('shop', 'api', 2)
>>> parse_compose_name("my-app-web-1", project="my-app")
('my-app', 'web', 1)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from revivadiag.collect.inventory import NUMBER_LABEL, PROJECT_LABEL, SERVICE_LABEL, STACK_LABEL
from revivadiag.redact import MASK, is_sensitive_label, redact_url
from revivadiag.schemas import to_frame

Row = dict[str, Any]
#: state given to a container listed but gone before it could be inspected
STATE_REMOVED = "removed"
_NEVER = "0001-01-01T00:00:00Z"
_NAME = re.compile(r"^(?P<project>.+?)(?P<sep>[_-])(?P<service>.+)(?P=sep)(?P<number>\d+)$")


def parse_compose_name(name: str, project: str | None = None) -> tuple[str, str, int | None] | None:
    """(project, service, number) from a Compose v1 or v2 container name, or None.

    With ``project`` known, the name must start with it; names without a trailing number
    (``container_name:``) give the rest as service and ``None`` as number.
    """
    name = name.lstrip("/")
    if project:
        for sep in ("_", "-"):
            if name.startswith(project + sep):
                rest = name[len(project) + 1 :]
                m = re.match(rf"^(?P<service>.+){re.escape(sep)}(?P<number>\d+)$", rest)
                if m:
                    return project, m["service"], int(m["number"])
                return project, rest, None
        return None
    m = _NAME.match(name)
    if not m:
        return None
    return m["project"], m["service"], int(m["number"])


def redact_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """Labels with secret-looking values masked (by key) and URL credentials removed."""
    out: dict[str, str] = {}
    for key, value in sorted((labels or {}).items()):
        text = "" if value is None else str(value)
        secret = is_sensitive_label(key)
        out[key] = (MASK if text else "") if secret else redact_url(text)
    return out


def compose_identity(
    inspect: Mapping[str, Any], project: str | None = None
) -> tuple[str, str, int | None]:
    """(project, service, number) of a container: labels first, then its name."""
    labels = _labels(inspect)
    name = container_name(inspect)
    if not labels.get(PROJECT_LABEL) and labels.get(STACK_LABEL):
        return swarm_identity(labels, name)
    parsed = parse_compose_name(name, labels.get(PROJECT_LABEL) or project)
    proj = labels.get(PROJECT_LABEL) or (parsed[0] if parsed else (project or ""))
    service = labels.get(SERVICE_LABEL) or (parsed[1] if parsed else name)
    number_text = labels.get(NUMBER_LABEL)
    number = int(number_text) if number_text and number_text.isdigit() else (
        parsed[2] if parsed else None
    )
    return proj, service, number


def swarm_identity(labels: Mapping[str, str], name: str) -> tuple[str, str, int | None]:
    """(stack, service in the stack, slot) of a Swarm task's container.

    >>> swarm_identity({STACK_LABEL: "shop", "com.docker.swarm.service.name": "shop_api"},
    ...                "shop_api.2.k3x9")
    ('shop', 'api', 2)
    """
    from revivadiag.collect.swarm import SWARM_SERVICE_LABEL, parse_task_name, short_service

    stack = str(labels.get(STACK_LABEL, ""))
    full, slot, _ = parse_task_name(name)
    service = short_service(str(labels.get(SWARM_SERVICE_LABEL) or full), stack)
    return stack, service, slot


def container_name(inspect: Mapping[str, Any]) -> str:
    """Name without the leading slash (inspect has ``Name``, list entries ``Names``)."""
    if inspect.get("Name"):
        return str(inspect["Name"]).lstrip("/")
    names = inspect.get("Names") or [""]
    return str(names[0]).lstrip("/")


def parse_started_at(text: str | None) -> pd.Timestamp | None:
    """Docker's RFC 3339 nanosecond timestamp as UTC; None for the zero time."""
    if not text or text.startswith("0001-01-01"):
        return None
    ts = pd.Timestamp(text)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


def parse_container(inspect: Mapping[str, Any], project: str | None = None) -> Row:
    """One ``containers`` row from a container inspect dict."""
    state = inspect.get("State") or {}
    config = inspect.get("Config") or {}
    proj, service, number = compose_identity(inspect, project)
    health = (state.get("Health") or {}).get("Status") or "none"
    return {
        "container_id": inspect.get("Id", ""),
        "name": container_name(inspect),
        "project": proj,
        "service": service,
        "number": number,
        "image": config.get("Image") or inspect.get("Image", ""),
        "state": state.get("Status", ""),
        "health": health,
        "restart_count": inspect.get("RestartCount", 0),
        "started_at": parse_started_at(state.get("StartedAt")),
        "pid": state.get("Pid", 0),
        "exposed_ports": sorted((config.get("ExposedPorts") or {}).keys(), key=_port_key),
        "labels": json.dumps(redact_labels(config.get("Labels")), sort_keys=True),
    }


def parse_vanished(summary: Mapping[str, Any], project: str | None = None) -> Row:
    """A ``containers`` row for a container listed but gone before its inspect."""
    proj, service, number = compose_identity(summary, project)
    return {
        "container_id": summary.get("Id", ""),
        "name": container_name(summary),
        "project": proj,
        "service": service,
        "number": number,
        "image": summary.get("Image", ""),
        "state": STATE_REMOVED,
        "health": "none",
        "restart_count": None,
        "started_at": None,
        "pid": 0,
        "exposed_ports": [],
        "labels": json.dumps(redact_labels(summary.get("Labels")), sort_keys=True),
    }


def parse_containers(
    inspects: Iterable[Mapping[str, Any]],
    vanished: Iterable[Mapping[str, Any]] = (),
    project: str | None = None,
) -> pd.DataFrame:
    """The ``containers`` frame, sorted by service then name."""
    rows = [parse_container(i, project) for i in inspects]
    rows += [parse_vanished(s, project) for s in vanished]
    rows.sort(key=lambda r: (r["service"], r["name"]))
    return to_frame("containers", rows)


def parse_ports(inspects: Iterable[Mapping[str, Any]], project: str | None = None) -> pd.DataFrame:
    """The ``ports`` frame: one row per host binding of a published port."""
    rows: list[Row] = []
    for inspect in inspects:
        name = container_name(inspect)
        _, service, _ = compose_identity(inspect, project)
        bindings = (inspect.get("NetworkSettings") or {}).get("Ports") or {}
        for spec, hosts in sorted(bindings.items(), key=lambda kv: _port_key(kv[0])):
            port, proto = _split_port(spec)
            for host in hosts or []:
                rows.append({
                    "container": name,
                    "service": service,
                    "container_port": port,
                    "protocol": proto,
                    "host_ip": host.get("HostIp", ""),
                    "host_port": int(host["HostPort"]) if host.get("HostPort") else None,
                })
    return to_frame("ports", rows)


def _split_port(spec: str) -> tuple[int, str]:
    port, _, proto = spec.partition("/")
    return int(port), proto or "tcp"


def _port_key(spec: str) -> tuple[int, str]:
    try:
        return _split_port(spec)
    except ValueError:
        return (0, spec)


def _labels(inspect: Mapping[str, Any]) -> dict[str, str]:
    labels = (inspect.get("Config") or {}).get("Labels")
    if labels is None:
        labels = inspect.get("Labels")
    return dict(labels or {})
