"""What the api and the worker share: settings from the environment and the queue's name.

DATABASE_URL (postgresql://user:password@host:port/db) and REDIS_URL
(redis://:password@host:port/n) carry credentials: they are never logged or returned.
"""

import os
import re
from pathlib import Path

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


def injected_delay_s():
    """Seconds every request waits first: the number of ms in the file named by
    REVIVADIAG_DELAY_FILE, written by ``revivadiag lab break backend-slow`` (0 without it)."""
    try:
        text = Path(os.environ["REVIVADIAG_DELAY_FILE"]).read_text(encoding="ascii")[:16]
        return min(max(int(text), 0), 60000) / 1000
    except (KeyError, OSError, ValueError):
        return 0.0


def where(url):
    """``host:port`` of a URL, for logs (credentials dropped)."""
    match = re.match(r"^[a-z]+://(?:[^@/]*@)?([^/?#]+)", url)
    return match.group(1) if match else "?"
