"""What is wrong with a URL a browser is given: localhost, container names, internal ports, http.

Pure functions shared by the config audit (environment variables, the served page).

>>> for problem in client_url_problems("http://localhost:8000", internal_ports={8000}):
...     print(problem)
host localhost is the browser's own machine
port 8000 is a container port (bypasses the proxy)
>>> client_url_problems("/api"), is_mixed_content("ws://example.test/ws")
([], True)
>>> find_urls('fetch("ws://localhost:8000/ws"); xmlns="http://www.w3.org/2000/svg"')
['ws://localhost:8000/ws']
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "0.0.0.0", "::1"})
#: hosts of identifiers that look like URLs but are never fetched
NAMESPACE_HOSTS = frozenset({"www.w3.org", "w3.org", "schema.org", "ns.adobe.com", "purl.org"})
_URL = re.compile(r"\b(?:https?|wss?)://[^\s\"'`<>()\[\]{},;\\]+", re.IGNORECASE)


def find_urls(text: str) -> list[str]:
    """Absolute http(s)/ws(s) URLs in ``text`` (XML namespace identifiers excluded)."""
    out = []
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(".")
        host = (urlsplit(url).hostname or "").lower()
        if host and host not in NAMESPACE_HOSTS:
            out.append(url)
    return out


def url_host_port(url: str) -> tuple[str, int | None]:
    """(host, port) of an absolute URL, or of ``host:port`` / ``host``; ("", None) if none."""
    text = url.strip()
    if "://" not in text:
        text = "tcp://" + text
    try:
        parts = urlsplit(text)
        return (parts.hostname or "").lower(), parts.port
    except ValueError:
        return "", None


def is_local_host(host: str) -> bool:
    """localhost, loopback or the any-address."""
    return host.lower() in LOCAL_HOSTS or host.startswith("127.")


def client_url_problems(url: str, internal_names: Iterable[str] = (),
                        internal_ports: Iterable[int] = ()) -> list[str]:
    """Problems of a URL served to browsers; an empty list for relative or public URLs.

    ``internal_ports``: the ports of the services behind the proxy (inside the network and
    published): a browser URL with one of these bypasses the proxy.
    """
    if not url or "://" not in url:
        return []
    host, port = url_host_port(url)
    names = {n.lower() for n in internal_names}
    problems = []
    if is_local_host(host):
        problems.append(f"host {host} is the browser's own machine")
    elif host in names:
        problems.append(f"host {host} is a container/service name browsers cannot resolve")
    if port is not None and port in set(internal_ports):
        problems.append(f"port {port} is a container port (bypasses the proxy)")
    return problems


def is_mixed_content(url: str) -> bool:
    """An absolute ``http://`` or ``ws://`` URL (blocked or warned on an https page)."""
    return url.lower().startswith(("http://", "ws://"))
