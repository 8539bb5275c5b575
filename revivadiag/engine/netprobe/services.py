"""``postgres`` (psycopg, when importable) and ``redis`` (raw RESP: AUTH then PING) jobs.

A rejected password becomes ``auth_failed: true`` with a short text; the password itself
never appears in a result (it is scrubbed from every error text).

>>> resp_command("AUTH", "s3cret")
b'*2\\r\\n$4\\r\\nAUTH\\r\\n$6\\r\\ns3cret\\r\\n'
>>> is_auth_error("-WRONGPASS invalid username-password pair or user is disabled.")
True
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from .context import Context
from .dnswire import LOOKUP_TIMEOUT_S, resolve_sync
from .outcomes import (
    CONNECTION_REFUSED,
    DNS_RESOLUTION_FAILED,
    TIMEOUT,
    DnsFailure,
    classify_exception,
)
from .probes import server_of

Job = dict[str, Any]
Result = dict[str, Any]
DEFAULT_SERVICE_TIMEOUT_S = 2.0
_AUTH_MARKERS = ("WRONGPASS", "NOAUTH", "invalid password", "invalid username-password",
                 "password authentication failed", "no password supplied",
                 "authentication failed")
_PG_MARKERS = (("connection refused", CONNECTION_REFUSED), ("timeout expired", TIMEOUT),
               ("timed out", TIMEOUT), ("could not translate host name", DNS_RESOLUTION_FAILED))


def scrub(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ***."""
    return text.replace(secret, "***") if secret else text


def is_auth_error(text: str) -> bool:
    """True when a server's error text says the credentials were rejected."""
    low = text.lower()
    return any(m.lower() in low for m in _AUTH_MARKERS)


def resp_command(*args: str) -> bytes:
    """A RESP array of bulk strings."""
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _service_result(kind: str, job: Job) -> Result:
    return {"kind": kind, "host": str(job["host"]), "port": int(job["port"]), "ip": "",
            "ok": False, "auth_failed": False, "response_ms": None, "error_type": "",
            "error": "", "server_version": ""}


def classify_pg_error(text: str) -> tuple[str, bool]:
    """(error_type, auth_failed) from a libpq error text."""
    low = text.lower()
    if is_auth_error(text) or ('role "' in low and "does not exist" in low):
        return "", True
    for marker, etype in _PG_MARKERS:
        if marker in low:
            return etype, False
    return CONNECTION_REFUSED, False


def postgres_job(job: Job) -> Result:
    """Connect with psycopg, read the server version (blocking; called in a thread)."""
    res = _service_result("postgres", job)
    password = str(job.get("password", "") or "")
    try:
        import psycopg
    except ImportError:
        res["error"] = "psycopg is not installed where the probe ran"
        return res
    timeout_s = float(job.get("timeout_s", DEFAULT_SERVICE_TIMEOUT_S))
    start = time.perf_counter()
    try:
        addresses, _ms = resolve_sync(res["host"], server_of(job), timeout_s)
        res["ip"] = addresses[0]
        with psycopg.connect(host=res["host"], hostaddr=res["ip"], port=res["port"],
                             user=str(job.get("user", "")), password=password,
                             dbname=str(job.get("dbname", "")) or None,
                             connect_timeout=max(2, math.ceil(timeout_s))) as conn:
            res["server_version"] = str(conn.info.server_version)
        res["ok"] = True
    except DnsFailure as exc:
        res.update(error_type=classify_exception(exc)[1], error=str(exc))
    except psycopg.Error as exc:
        text = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                     password)
        etype, auth = classify_pg_error(text)
        res.update(error_type=etype, auth_failed=auth,
                   error=f"credentials rejected: {text}" if auth else text)
    res["response_ms"] = round((time.perf_counter() - start) * 1000, 3)
    return res


async def redis_job(job: Job, ctx: Context) -> Result:
    """Connect, AUTH (when a password is given), PING; expects +PONG."""
    res = _service_result("redis", job)
    password = str(job.get("password", "") or "")
    timeout_s = float(job.get("timeout_s", DEFAULT_SERVICE_TIMEOUT_S))
    start = time.perf_counter()
    try:
        addresses, _ms = await ctx.resolve(res["host"], server_of(job), LOOKUP_TIMEOUT_S)
        res["ip"] = addresses[0]
        reply = await asyncio.wait_for(_auth_ping(res["ip"], res["port"], job, password), timeout_s)
        res["ok"] = reply == "+PONG"
        if not res["ok"]:
            auth = is_auth_error(reply)
            res.update(auth_failed=auth, error=("credentials rejected: " if auth else "")
                       + scrub(reply, password)[:200])
    except (TimeoutError, OSError, DnsFailure) as exc:
        _outcome, etype, text = classify_exception(exc)
        res.update(error_type=etype, error=scrub(text, password))
    res["response_ms"] = round((time.perf_counter() - start) * 1000, 3)
    return res


async def _auth_ping(ip: str, port: int, job: Job, password: str) -> str:
    reader, writer = await asyncio.open_connection(ip, port)
    try:
        if password:
            user = str(job.get("user", "") or "")
            creds = (user, password) if user else (password,)
            writer.write(resp_command("AUTH", *creds))
            reply = (await reader.readline()).decode(errors="replace").strip()
            if reply != "+OK":
                return reply or "-ERR connection closed after AUTH"
        writer.write(resp_command("PING"))
        reply = (await reader.readline()).decode(errors="replace").strip()
        return reply or "-ERR connection closed"
    finally:
        writer.close()
