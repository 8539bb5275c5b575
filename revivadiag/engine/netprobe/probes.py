"""The ``dns`` and ``tcp`` job kinds, on asyncio (see revivadiag/engine/jobs.py for fields)."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from .context import Context, backoff_delays
from .dnswire import LOOKUP_RETRIES, LOOKUP_TIMEOUT_S, DnsFormatError
from .outcomes import (
    CONNECTION_REFUSED,
    DNS_RESOLUTION_FAILED,
    OPEN,
    TIMEOUT,
    DnsFailure,
    classify_exception,
    classify_rcode,
)

DOCKER_DNS = "127.0.0.11"
DEFAULT_TCP_TIMEOUT_S = 0.5
DEFAULT_DNS_TIMEOUT_S = LOOKUP_TIMEOUT_S
DEFAULT_BACKOFF_S = 0.05

Job = dict[str, Any]
Result = dict[str, Any]


def server_of(job: Job) -> str:
    """The resolver a job asks: Docker's by default, "" for the system resolver."""
    return str(job["server"]) if "server" in job and job["server"] is not None else DOCKER_DNS


def pick_address(addresses: list[str], preferred: list[str]) -> str:
    """The first preferred address that was answered, else the first answer."""
    for ip in preferred:
        if ip in addresses:
            return ip
    return addresses[0]


async def dns_job(job: Job, ctx: Context) -> Result:
    """One A query of ``name`` at ``server``; retried on timeout with doubling timeouts."""
    name, server = str(job["name"]), server_of(job)
    found = await ctx.ask(name, server, float(job.get("timeout_s", DEFAULT_DNS_TIMEOUT_S)),
                          int(job.get("retries", LOOKUP_RETRIES)), bool(job.get("forwarded")))
    res: Result = {"kind": "dns", "name": name, "server": server, "answers": found.answers,
                   "rcode": found.rcode, "latency_ms": round(found.latency_ms, 3),
                   "attempts": found.attempts, "error_type": "", "error": found.error}
    res["error_type"] = classify_rcode(res["rcode"], res["answers"])
    if res["error_type"] and not res["error"]:
        suffix = " (no A record)" if res["rcode"] == "NOERROR" else ""
        res["error"] = f"{name}: {res['rcode']}{suffix}"
    return res


async def connect_once(ip: str, port: int, timeout_s: float) -> tuple[str, float, str, str]:
    """One TCP connect: (outcome, ms, error_type, error)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    start = time.perf_counter()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), timeout_s)
    except (TimeoutError, OSError) as exc:
        outcome, etype, text = classify_exception(exc)
        return outcome, (time.perf_counter() - start) * 1000, etype, text
    finally:
        sock.close()
    return OPEN, (time.perf_counter() - start) * 1000, "", ""


async def tcp_job(job: Job, ctx: Context) -> Result:
    """Resolve ``host`` (at Docker's resolver) and connect to ``port``, with retries."""
    host, port = str(job["host"]), int(job["port"])
    res: Result = {"kind": "tcp", "host": host, "port": port, "ip": "", "outcome": "",
                   "connect_ms": None, "dns_ms": None, "attempts": 0, "error_type": "",
                   "error": ""}
    dns_timeout = float(job.get("dns_timeout_s", DEFAULT_DNS_TIMEOUT_S))
    try:
        addresses, dns_ms = await ctx.resolve(host, server_of(job), dns_timeout)
    except (DnsFailure, DnsFormatError, ValueError) as exc:
        outcome, etype, text = classify_exception(exc)
        res.update(outcome=outcome, error_type=etype or DNS_RESOLUTION_FAILED, error=text)
        return res
    res["dns_ms"] = round(dns_ms, 3)
    res["ip"] = pick_address(addresses, [str(a) for a in job.get("prefer_ips", [])])
    await _connect_with_retries(job, res, ctx)
    return res


async def _connect_with_retries(job: Job, res: Result, ctx: Context) -> None:
    key = f"{res['ip']}:{res['port']}"
    timeout_s = float(job.get("timeout_s", DEFAULT_TCP_TIMEOUT_S))
    retry_on = set(job.get("retry_on", [CONNECTION_REFUSED, TIMEOUT]))
    delays = list(backoff_delays(int(job.get("retries", 1)),
                                 float(job.get("backoff_s", DEFAULT_BACKOFF_S))))
    note = ""
    if ctx.breaker.is_open(key):
        delays, note = [], f" ({ctx.breaker.note(key)}; not retried)"
    for attempt in range(len(delays) + 1):
        outcome, ms, etype, text = await connect_once(res["ip"], res["port"], timeout_s)
        res.update(outcome=outcome, connect_ms=round(ms, 3), error_type=etype, error=text,
                   attempts=attempt + 1)
        ctx.breaker.record(key, outcome == OPEN)
        if outcome == OPEN or etype not in retry_on or attempt >= len(delays):
            break
        if ctx.breaker.is_open(key):
            note = f" ({ctx.breaker.note(key)}; retries stopped)"
            break
        await asyncio.sleep(delays[attempt])
    if res["error"]:
        res["error"] += note
