"""The ``env`` frame: each container's environment, redacted at collection.

A value is masked (``***``) when its key looks like a secret (``*_PASSWORD``, ``*_SECRET``,
tokens, keys: :func:`revivadiag.redact.is_sensitive_key`); a URL keeps everything but its
password. Any other value that contains a secret seen elsewhere in the project (say
``REDIS_ARGS=--requirepass <the REDIS_PASSWORD>``) has it masked too, via a
:class:`~revivadiag.redact.Scrubber` built by :func:`revivadiag.redact.project_scrubber`.
Either way the row's ``is_sensitive`` is true.

>>> parse_env_rows("db", "database", ["POSTGRES_PASSWORD=hunter22", "TZ=UTC"])[0]["value"]
'***'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from revivadiag.collect.containers import compose_identity, container_name
from revivadiag.redact import Scrubber, project_scrubber, redact_env, split_env
from revivadiag.schemas import to_frame

Row = dict[str, Any]


def parse_env_rows(
    container: str, service: str, items: Iterable[str], scrubber: Scrubber | None = None
) -> list[Row]:
    """Redacted ``env`` rows of one container, in the order Docker reports them."""
    rows: list[Row] = []
    for item in items:
        key, value = split_env(str(item))
        shown, sensitive = redact_env(key, value)
        if scrubber is not None and not sensitive:
            scrubbed = scrubber.scrub(shown)
            shown, sensitive = scrubbed, scrubbed != shown
        rows.append({"container": container, "service": service, "key": key,
                     "value": shown, "is_sensitive": sensitive})
    return rows


def parse_env(
    inspects: Iterable[Mapping[str, Any]],
    project: str | None = None,
    scrubber: Scrubber | None = None,
) -> pd.DataFrame:
    """The ``env`` frame of every container (``scrubber`` defaults to ``project_scrubber``)."""
    inspects = list(inspects)
    scrubber = project_scrubber(inspects) if scrubber is None else scrubber
    rows: list[Row] = []
    for inspect in inspects:
        _, service, _ = compose_identity(inspect, project)
        items = (inspect.get("Config") or {}).get("Env") or []
        rows += parse_env_rows(container_name(inspect), service, items, scrubber)
    return to_frame("env", rows)
