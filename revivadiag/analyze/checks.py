"""The config audit's check catalogue: ids, titles and the row shape of the ``checks`` frame."""

from __future__ import annotations

from typing import Any

Row = dict[str, Any]

#: check id -> title (the order of the checks table)
CHECKS: dict[str, str] = {
    "client-api-url": "Client-visible API/WebSocket URLs avoid localhost and container ports",
    "page-api-url": "The page served through the proxy avoids localhost and container ports",
    "mixed-content": "No http:// or ws:// URL is served to the https site",
    "internal-dns": "Internal URLs name hosts that resolve inside the network",
    "container-naming": "Container names follow <prefix>_<service>",
    "published-ports": "Only the environment's allowed ports are published",
    "frontend-isolation": "The frontend cannot reach the database or Redis",
    "proxy-keepalive": "The proxy keeps upstream connections alive",
    "proxy-resolution": "The proxy re-resolves the backend's name after start",
    "websocket-upgrade": "WebSocket upgrade works through the proxy",
    "forwarded-headers": "X-Forwarded-Proto/-For/-Host reach the backend",
    "xff-spoofing": "A client-supplied X-Forwarded-For is not trusted",
    "cors-preflight": "CORS preflight does not allow arbitrary origins",
    "rate-limit": "The proxy rate-limits a burst of requests",
}


STATUSES = ("pass", "fail", "warn", "skip")


def row(check_id: str, subject: str, status: str, evidence: str) -> Row:
    """One checks row (environment filled in by :func:`audit`)."""
    return {"check_id": check_id, "title": CHECKS[check_id], "subject": subject,
            "status": status, "evidence": evidence}
