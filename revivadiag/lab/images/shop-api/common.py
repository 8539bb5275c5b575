"""What the api and the worker share: settings from the environment and the queue's name.

DATABASE_URL (postgresql://user:password@host:port/db) and REDIS_URL
(redis://:password@host:port/n) carry credentials: they are never logged or returned.
"""

import os
import re

JOB_QUEUE = os.environ.get("JOB_QUEUE", "jobs")


def database_url():
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("DATABASE_URL is not set")
    return url


def redis_url():
    url = os.environ.get("REDIS_URL", "")
    if not url:
        raise SystemExit("REDIS_URL is not set")
    return url


def where(url):
    """``host:port`` of a URL, for logs (credentials dropped)."""
    match = re.match(r"^[a-z]+://(?:[^@/]*@)?([^/?#]+)", url)
    return match.group(1) if match else "?"
