"""Live facts for the config audit, gathered through the proxy's published loopback port.

Every request goes to ``http://127.0.0.1:<published frontend port>`` (the project's own
proxy) and every loop is bounded. The proxy's nginx configuration is read from its
container without a shell: ``nginx -T`` through ``exec`` (the binary is there), else the
files themselves through the archive API. Nothing here judges; :mod:`config_audit` does.
"""

from __future__ import annotations

import fnmatch
import io
import posixpath
import re
import tarfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from revivadiag.collect import nginx_conf

#: a documentation address (RFC 5737), sent only as a header value, never contacted
FAKE_CLIENT_IP = "203.0.113.7"
#: a foreign origin, sent only as a header value
FOREIGN_ORIGIN = "https://untrusted.example"
MAX_BURST = 200
BURST_CONCURRENCY = 25  # arrivals at once: a limit shows whatever the response time
MAX_SCRIPTS = 5
MAX_BODY = 1_000_000
MAX_CONF_FILES = 30
_SCRIPT_SRC = re.compile(r"<script[^>]+src\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_INCLUDE = re.compile(r"^\s*include\s+([^;#]+);", re.MULTILINE)
_CONF_ARG = re.compile(r"\s-c\s+(\S+)")


@dataclass
class HttpResult:
    """Status, headers (lower-case names) and body text of one request, or its error."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    error: str = ""


@dataclass
class LiveFacts:
    """Everything the live checks observed."""

    base_url: str
    page: HttpResult | None = None
    scripts: dict[str, str] = field(default_factory=dict)
    echo: HttpResult | None = None
    websocket: tuple[bool, str] | None = None
    cors: dict[str, HttpResult] = field(default_factory=dict)
    burst: dict[str, int] = field(default_factory=dict)
    nginx_files: dict[str, str] | None = None
    nginx_source: str = ""


def check_loopback(base_url: str) -> str:
    """``base_url`` if it is ``http://127.0.0.1:PORT``; ValueError otherwise."""
    if not re.fullmatch(r"http://127\.0\.0\.1:\d{1,5}", base_url):
        raise ValueError(f"live checks talk to http://127.0.0.1:PORT only, not {base_url!r}")
    return base_url


def _request(http: httpx.Client, method: str, url: str, **kw: Any) -> HttpResult:
    try:
        r = http.request(method, url, **kw)
    except httpx.HTTPError as exc:
        return HttpResult(error=f"{type(exc).__name__}: {exc}"[:300])
    return HttpResult(r.status_code, {k.lower(): v for k, v in r.headers.items()},
                      r.text[:MAX_BODY])


def fetch_page(http: httpx.Client, base: str) -> tuple[HttpResult, dict[str, str]]:
    """The page at ``/`` and up to MAX_SCRIPTS same-origin scripts it loads."""
    page = _request(http, "GET", base + "/")
    scripts: dict[str, str] = {}
    for src in _SCRIPT_SRC.findall(page.body)[:MAX_SCRIPTS]:
        if src.startswith("/") and not src.startswith("//"):
            res = _request(http, "GET", base + src)
            if res.status == 200:
                scripts[src] = res.body
    return page, scripts


def websocket_check(base: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """Open ws://.../ws through the proxy, send one message, wait for the echo."""
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    url = "ws://" + base.removeprefix("http://") + "/ws"
    try:
        with connect(url, open_timeout=timeout_s, close_timeout=1.0) as ws:
            ws.send("revivadiag-ping")
            reply = ws.recv(timeout=timeout_s)
    except (WebSocketException, OSError, TimeoutError) as exc:
        return False, f"{url}: {type(exc).__name__}: {exc}"[:300]
    shown = reply if isinstance(reply, str) else reply.decode("utf-8", "replace")
    return True, f"{url}: upgraded (101), echo {shown[:80]!r}"


def burst(
    http: httpx.Client, url: str, count: int = 50, budget_s: float = 10.0,
    concurrency: int = BURST_CONCURRENCY,
) -> dict[str, int]:
    """Status counts of ``count`` GETs sent ``concurrency`` at a time (bounded in time)."""
    deadline = time.monotonic() + budget_s

    def one(_: int) -> str:
        if time.monotonic() > deadline:
            return "not_sent"
        res = _request(http, "GET", url)
        return str(res.status) if res.status is not None else "error"

    n = max(1, min(count, MAX_BURST))
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, n))) as pool:
        return dict(Counter(pool.map(one, range(n))))


def gather(base_url: str, *, burst_count: int = 50, timeout_s: float = 3.0) -> LiveFacts:
    """All HTTP-level live facts from the proxy at ``base_url`` (http://127.0.0.1:PORT)."""
    base = check_loopback(base_url)
    facts = LiveFacts(base_url=base)
    limits = httpx.Limits(max_connections=BURST_CONCURRENCY)
    with httpx.Client(timeout=timeout_s, trust_env=False, limits=limits) as http:
        facts.page, facts.scripts = fetch_page(http, base)
        facts.echo = _request(http, "GET", base + "/api/debug/echo",
                              headers={"X-Forwarded-For": FAKE_CLIENT_IP})
        for origin in (FOREIGN_ORIGIN, "http://localhost:" + base.rsplit(":", 1)[1]):
            facts.cors[origin] = _request(
                http, "OPTIONS", base + "/api/health",
                headers={"Origin": origin, "Access-Control-Request-Method": "GET",
                         "Access-Control-Request-Headers": "content-type"},
            )
        facts.websocket = websocket_check(base, timeout_s)
        facts.burst = burst(http, base + "/api/health", burst_count)
    return facts


# ---------------------------------------------------------------- nginx configuration


def nginx_conf_path(top: dict[str, Any]) -> str:
    """The ``-c`` file of the nginx master in ``docker top`` output (else the default)."""
    titles = [t.upper() for t in top.get("Titles") or []]
    col = titles.index("CMD") if "CMD" in titles else (titles.index("COMMAND") if
                                                        "COMMAND" in titles else -1)
    for proc in top.get("Processes") or []:
        cmd = " ".join(proc) if col < 0 else str(proc[col])
        is_master = "nginx" in cmd and "master" in cmd
        if is_master or cmd.startswith(("nginx", "/usr/sbin/nginx")):
            m = _CONF_ARG.search(" " + cmd)
            if m:
                return m.group(1)
    return "/etc/nginx/nginx.conf"


def _archive_files(container: Any, path: str) -> dict[str, str]:
    """Regular files under ``path`` (a file or a directory) from the archive API."""
    stream, _stat = container.get_archive(path)
    data = b"".join(stream)
    out: dict[str, str] = {}
    parent = posixpath.dirname(path.rstrip("/"))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.size <= MAX_BODY:
                fh = tar.extractfile(member)
                if fh is not None:
                    out[posixpath.join(parent, member.name)] = fh.read().decode("utf-8", "replace")
    return out


def _via_archive(container: Any, conf: str) -> dict[str, str]:
    import docker.errors

    files = _archive_files(container, conf)
    todo = list(files)
    root = posixpath.dirname(conf)
    while todo and len(files) < MAX_CONF_FILES:
        for pattern in _INCLUDE.findall(files[todo.pop()]):
            pattern = pattern.strip().strip("\"'")
            if not pattern.startswith("/"):
                pattern = posixpath.join(root, pattern)
            directory = posixpath.dirname(pattern)
            try:
                found = _archive_files(container, directory) if any(
                    c in pattern for c in "*?[") else _archive_files(container, pattern)
            except docker.errors.DockerException:
                continue  # a missing include: nginx -T would have refused it anyway
            for path, text in found.items():
                if fnmatch.fnmatch(path, pattern) and path not in files:
                    files[path] = text
                    todo.append(path)
    return files


def read_nginx_config(client: Any, container_name: str) -> tuple[dict[str, str] | None, str]:
    """``({path: text}, how)`` of the proxy's running configuration, or ``(None, why)``."""
    import docker.errors

    try:
        container = client.containers.get(container_name)
        conf = nginx_conf_path(client.api.top(container.id))
    except docker.errors.DockerException as exc:
        return None, f"cannot inspect {container_name}: {exc}"[:300]
    try:
        res = container.exec_run(["nginx", "-T", "-c", conf], demux=True)
        out = (res.output[0] or b"").decode("utf-8", "replace") if res.output else ""
        if res.exit_code == 0 and "# configuration file" in out:
            return nginx_conf.split_dump(out), f"nginx -T -c {conf} (exec)"
    except docker.errors.DockerException:
        pass
    try:
        return _via_archive(container, conf), f"{conf} and its includes (archive API)"
    except docker.errors.DockerException as exc:
        return None, f"cannot read {conf} from {container_name}: {exc}"[:300]
