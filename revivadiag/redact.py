"""Every secret rule in one place: which names are sensitive, credentials inside URLs, the
secret values of a project's containers, and the :class:`Scrubber` that masks them.

A value is sensitive when its key looks like a secret (``*_PASSWORD``, ``*_SECRET``,
``*_TOKEN``, ``*_KEY``, ...) or when it is a URL that carries credentials. Redacted values
become ``***``; a URL keeps its scheme, host, port and path, and loses only the password.
Frames are redacted where they are collected; every file a run writes is scrubbed again with
:func:`secret_scrubber` (each secret raw, HTML-escaped and JSON-escaped).

>>> is_sensitive_key("DATABASE_PASSWORD"), is_sensitive_key("DATABASE_HOST")
(True, False)
>>> is_sensitive_label("com.example.api-token")
True
>>> redact_url("redis://:hunter2@redis:6379/0")
'redis://:***@redis:6379/0'
>>> redact_env("REDIS_URL", "postgresql://app:pw@db:5432/app")
('postgresql://app:***@db:5432/app', True)
>>> url_parts("postgresql://app:p%40ss@db:5432/shop")
('app', 'p@ss', 'shop')
>>> sorted(secret_values([{"Config": {"Env": ["DB_PASSWORD=s3cret!", "HOST=db",
...     "DATABASE_URL=postgresql://app:p%40ss@db/app"], "Labels": {"x.api-token": "tok3n"}}}]))
['p%40ss', 'p@ss', 's3cret!', 'tok3n']
>>> s = secret_scrubber(["p&ss-word"])
>>> s.scrub("pw=p&amp;ss-word"), mask_parameters({"db_password": "x", "host": "h"}, s)
('pw=***', {'db_password': '***', 'host': 'h'})
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"

_SENSITIVE_KEY = re.compile(
    r"(PASSWORD|PASSWD|PASS$|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|ACCESS_KEY|CREDENTIALS?|AUTH$|"
    r"REDISCLI_AUTH|SESSION_KEY|SIGNING_KEY|COOKIE_SECRET|DSN$)",
    re.IGNORECASE,
)
# scheme://user:password@host  or  scheme://:password@host
_URL_CREDENTIALS = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?=@)")
# a URL inside free text
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")
_WHITESPACE_RUNS = re.compile(r"(\s+)")


# ---------------------------------------------------------------- names


def is_sensitive_key(key: str) -> bool:
    """True when a variable or label name says its value is a secret."""
    return bool(_SENSITIVE_KEY.search(key))


def is_sensitive_label(label_key: str) -> bool:
    """Whether a label names a secret (``com.example.api-token`` reads as ``..._API_TOKEN``)."""
    return is_sensitive_key(label_key.replace(".", "_").replace("-", "_"))


# ---------------------------------------------------------------- URLs


def redact_url(text: str) -> str:
    """Mask the password part of every ``scheme://user:password@host`` in ``text``.

    No part of such a URL holds whitespace, so only the whitespace-separated pieces of
    ``text`` that hold ``://`` are searched: the pattern, tried at every position of a long
    run of URL-ish characters (a base64 image in a notebook), would otherwise cost time
    quadratic in the run's length (0.4 s for one report here).

    >>> redact_url("dsn postgres://app:s3cret@db:5432/app and https://example.org/x")
    'dsn postgres://app:***@db:5432/app and https://example.org/x'
    >>> redact_url("1redis://:pw@cache ok"), redact_url("A+b/" * 5)
    ('1redis://:***@cache ok', 'A+b/A+b/A+b/A+b/A+b/')
    """
    if "://" not in text:
        return text
    return "".join(_URL_CREDENTIALS.sub(_mask_password, piece) if "://" in piece else piece
                   for piece in _WHITESPACE_RUNS.split(text))


def _mask_password(match: re.Match[str]) -> str:
    return match.group("head") + MASK


def url_parts(url: str) -> tuple[str, str, str]:
    """(user, password, path name) of one URL, percent-decoded; '' when absent or malformed."""
    try:
        parts = urlsplit(url.strip())
        user = unquote(parts.username or "")
        password = unquote(parts.password or "")
    except ValueError:
        return "", "", ""
    return user, password, parts.path.lstrip("/")


def url_passwords(text: str) -> set[str]:
    """Passwords inside every ``scheme://user:password@host`` of ``text`` (raw and decoded)."""
    found: set[str] = set()
    if "://" not in text:
        return found
    for match in _URL.finditer(text):
        try:
            password = urlsplit(match.group(0)).password
        except ValueError:
            continue
        if password:
            found.update({password, unquote(password)})
    return found


# ---------------------------------------------------------------- environments


def redact_env(key: str, value: str) -> tuple[str, bool]:
    """Return ``(shown_value, is_sensitive)`` for one environment variable."""
    if is_sensitive_key(key):
        return (MASK if value else ""), True
    cleaned = redact_url(value)
    return cleaned, cleaned != value


def split_env(item: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (KEY, VALUE); a bare ``KEY`` has an empty value.

    >>> split_env("A=b=c"), split_env("BARE")
    (('A', 'b=c'), ('BARE', ''))
    """
    key, _, value = item.partition("=")
    return key, value


def raw_env(inspect: Mapping[str, Any]) -> dict[str, str]:
    """The unredacted environment of a container inspect dict (memory only: holds secrets)."""
    return dict(split_env(str(item)) for item in ((inspect.get("Config") or {}).get("Env") or []))


def secret_values(inspects: Iterable[Mapping[str, Any]]) -> set[str]:
    """Secret values in container inspect dicts: sensitive env vars and labels, URL passwords."""
    found: set[str] = set()
    for inspect in inspects:
        for key, value in raw_env(inspect).items():
            if value and is_sensitive_key(key):
                found.add(value)
            found |= url_passwords(value)
        for key, label in ((inspect.get("Config") or {}).get("Labels") or {}).items():
            text = "" if label is None else str(label)
            if text and is_sensitive_label(str(key)):
                found.add(text)
            found |= url_passwords(text)
    return {v for v in found if v}


def project_scrubber(inspects: Iterable[Mapping[str, Any]]) -> Scrubber:
    """A Scrubber that knows every secret value of these containers (:func:`secret_values`)."""
    return Scrubber(secret_values(inspects))


# ---------------------------------------------------------------- scrubbing


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


def secret_scrubber(secrets: Iterable[str]) -> Scrubber:
    """A Scrubber for ``secrets`` and their HTML-escaped and JSON-escaped spellings."""
    variants: set[str] = set()
    for value in (s for s in secrets if s):
        variants.update(
            {
                value,
                html.escape(value),
                html.escape(value, quote=False),
                json.dumps(value)[1:-1],
                json.dumps(value, ensure_ascii=False)[1:-1],
            }
        )
    return Scrubber(variants)


def scrub_value(value: Any, scrubber: Scrubber) -> Any:
    """Every string inside ``value`` (dicts, lists, tuples) passed through ``scrubber``."""
    if isinstance(value, str):
        return scrubber.scrub(value)
    if isinstance(value, Mapping):
        return {k: scrub_value(v, scrubber) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, scrubber) for v in value]
    return value


def mask_parameters(params: Mapping[str, Any], scrubber: Scrubber | None = None) -> dict[str, str]:
    """Parameters as text for a report: secret-looking names masked, values scrubbed."""
    scrub = scrubber or Scrubber()
    out: dict[str, str] = {}
    for name, value in params.items():
        text = "" if value is None else str(value)
        secret = is_sensitive_key(str(name))
        out[str(name)] = (MASK if text else "") if secret else scrub.scrub(text)
    return out
