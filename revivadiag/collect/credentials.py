"""Credentials the health checks need, read from the containers' environment (memory only).

Where they come from, first match wins:

- PostgreSQL: the backend's ``DATABASE_URL``, else its ``DATABASE_USER`` /
  ``DATABASE_PASSWORD`` / ``DATABASE_NAME``, else the database container's
  ``POSTGRES_USER`` / ``POSTGRES_PASSWORD`` / ``POSTGRES_DB``;
- Redis: the backend's ``REDIS_PASSWORD``, else the password of its ``REDIS_INTERNAL_URL`` /
  ``REDIS_URL``, else the redis container's ``REDIS_PASSWORD``.

A :class:`Credentials` never shows its secrets in ``repr`` and registers them with a
:class:`~revivadiag.redact.Scrubber`, so every free-text field the checks emit is scrubbed.

>>> c = credentials_from_env({"DATABASE_URL": "postgresql://app:pw12@db:5432/shop"}, {}, {})
>>> (c.db_user, c.db_name), c
(('app', 'shop'), Credentials(db_user='app', db_name='shop', secrets=***))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from revivadiag.redact import Scrubber, url_parts

Env = Mapping[str, str]


@dataclass(frozen=True)
class Credentials:
    """What it takes to log in to PostgreSQL and Redis. Secrets stay out of ``repr``."""

    db_user: str = ""
    db_password: str = field(default="", repr=False)
    db_name: str = ""
    redis_password: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"Credentials(db_user={self.db_user!r}, db_name={self.db_name!r}, secrets=***)"

    def register(self, scrubber: Scrubber) -> Scrubber:
        """Add the secret values to ``scrubber`` (and return it)."""
        scrubber.add(self.db_password, self.redis_password)
        return scrubber


def _first(*values: str) -> str:
    return next((v for v in values if v), "")


def credentials_from_env(backend: Env, database: Env, redis: Env) -> Credentials:
    """Credentials from the raw environments of the backend, database and redis containers."""
    url_user, url_password, url_db = url_parts(backend.get("DATABASE_URL", ""))
    redis_url_password = _first(
        url_parts(backend.get("REDIS_INTERNAL_URL", ""))[1],
        url_parts(backend.get("REDIS_URL", ""))[1],
    )
    return Credentials(
        db_user=_first(url_user, backend.get("DATABASE_USER", ""),
                       database.get("POSTGRES_USER", ""), "postgres"),
        db_password=_first(url_password, backend.get("DATABASE_PASSWORD", ""),
                           database.get("POSTGRES_PASSWORD", "")),
        db_name=_first(url_db, backend.get("DATABASE_NAME", ""), database.get("POSTGRES_DB", ""),
                       url_user, backend.get("DATABASE_USER", ""),
                       database.get("POSTGRES_USER", "")),
        redis_password=_first(backend.get("REDIS_PASSWORD", ""), redis_url_password,
                              redis.get("REDIS_PASSWORD", "")),
    )
