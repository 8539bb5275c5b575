"""The project's secret values, read from its containers, to scrub what a run writes.

Frames are redacted at collection; this is the second line of defence for the files a run
writes (notebook, HTML, JSON, JUnit): every value of a secret-looking environment variable
or label, and every password inside a URL, becomes a string to mask. The values live in
memory only.

>>> sorted(secret_values([{"Config": {"Env": ["DB_PASSWORD=s3cret!", "HOST=db",
...     "DATABASE_URL=postgresql://app:p%40ss@db/app"], "Labels": {"x.api-token": "tok3n"}}}]))
['p%40ss', 'p@ss', 's3cret!', 'tok3n']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from revivadiag.redact import is_sensitive_key

_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


def url_passwords(text: str) -> set[str]:
    """Passwords inside every ``scheme://user:password@host`` of ``text`` (raw and decoded)."""
    found: set[str] = set()
    for match in _URL.finditer(text):
        try:
            password = urlsplit(match.group(0)).password
        except ValueError:
            continue
        if password:
            found.update({password, unquote(password)})
    return found


def secret_values(inspects: Iterable[Mapping[str, Any]]) -> set[str]:
    """Secret values in container inspect dicts: sensitive env vars and labels, URL passwords."""
    found: set[str] = set()
    for inspect in inspects:
        config = inspect.get("Config") or {}
        for entry in config.get("Env") or []:
            key, _, value = str(entry).partition("=")
            if value and is_sensitive_key(key):
                found.add(value)
            found |= url_passwords(value)
        for key, value in (config.get("Labels") or {}).items():
            text = "" if value is None else str(value)
            if text and is_sensitive_key(str(key).replace(".", "_").replace("-", "_")):
                found.add(text)
            found |= url_passwords(text)
    return {v for v in found if v}


def project_secrets(project: str | None, docker_host: str | None = None) -> tuple[str, set[str]]:
    """(the project chosen, its secret values): one container list and one inspect each.

    Raises EngineUnreachable or ProjectNotFound, which is how ``revivadiag diagnose`` fails
    fast (exit 2) before it starts a kernel.
    """
    from revivadiag.collect.inventory import gather
    from revivadiag.engine.client import connect

    client = connect(docker_host)
    try:
        inventory = gather(client, project)
    finally:
        client.close()
    return inventory.project, secret_values(inventory.containers)
