"""Redaction of secret values, applied where data is collected.

A value is sensitive when its key looks like a secret (``*_PASSWORD``, ``*_SECRET``,
``*_TOKEN``, ``*_KEY``, ...) or when it is a URL that carries credentials. Redacted values
become ``***``; a URL keeps its scheme, host, port and path, and loses only the password.

>>> is_sensitive_key("DATABASE_PASSWORD"), is_sensitive_key("DATABASE_HOST")
(True, False)
>>> redact_url("redis://:hunter2@redis:6379/0")
'redis://:***@redis:6379/0'
>>> redact_env("REDIS_URL", "postgresql://app:pw@db:5432/app")
('postgresql://app:***@db:5432/app', True)
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

_SENSITIVE_KEY = re.compile(
    r"(PASSWORD|PASSWD|PASS$|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIALS?|AUTH$|"
    r"REDISCLI_AUTH|SESSION_KEY|SIGNING_KEY|COOKIE_SECRET|DSN$)",
    re.IGNORECASE,
)
# scheme://user:password@host  or  scheme://:password@host
_URL_CREDENTIALS = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?=@)")


def is_sensitive_key(key: str) -> bool:
    """True when a variable or label name says its value is a secret."""
    return bool(_SENSITIVE_KEY.search(key))


def redact_url(text: str) -> str:
    """Mask the password part of every ``scheme://user:password@host`` in ``text``."""
    return _URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK, text)


def redact_env(key: str, value: str) -> tuple[str, bool]:
    """Return ``(shown_value, is_sensitive)`` for one environment variable."""
    if is_sensitive_key(key):
        return (MASK if value else ""), True
    cleaned = redact_url(value)
    return cleaned, cleaned != value


class Scrubber:
    """Replaces known secret values wherever they occur in text.

    Collectors that see raw secrets (to authenticate) register them here, and every
    free-text field they emit passes through :meth:`scrub`.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *values: str) -> None:
        for v in values:
            if v and len(v) >= 4:
                self._secrets.add(v)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def scrub(self, text: str) -> str:
        out = redact_url(text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            out = out.replace(secret, MASK)
        return out
