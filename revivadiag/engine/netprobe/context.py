"""What the probes of one batch share: a resolver cache, DNS bound, retry policy, breaker.

>>> b = Breaker(threshold=2)
>>> b.record("db:5432", ok=False); b.record("db:5432", ok=False); b.is_open("db:5432")
True
>>> [round(d, 2) for d in backoff_delays(3, base_s=0.05, jitter=0.0)]
[0.05, 0.1, 0.2]
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from .dnswire import (
    LOOKUP_RETRIES,
    Answer,
    DnsFormatError,
    addresses_or_raise,
    attempt_timeouts,
    is_ip,
    query_async,
)
from .outcomes import DnsFailure

DEFAULT_BREAKER_THRESHOLD = 3
#: queries of names Docker forwards upstream, in flight per worker: Docker loses more of
#: them the more are in flight (measured here: 2 % one at a time, 16 % with 8)
FORWARDED_IN_FLIGHT = 1
MAX_BACKOFF_S = 1.0

@dataclass
class Lookup:
    """What asking one name (with retries) gave."""

    answers: list[str] = field(default_factory=list)
    rcode: str = ""
    latency_ms: float = 0.0
    attempts: int = 0
    error: str = ""


def backoff_delays(retries: int, base_s: float = 0.05, jitter: float = 0.5,
                   cap_s: float = MAX_BACKOFF_S) -> Iterator[float]:
    """Exponential backoff with +-``jitter`` relative jitter: base, 2 base, 4 base, ... capped."""
    for attempt in range(retries):
        delay = min(cap_s, base_s * (2 ** attempt))
        yield delay * (1 + random.uniform(-jitter, jitter)) if jitter else delay


@dataclass
class Breaker:
    """Per-target circuit breaker: open after ``threshold`` consecutive failures."""

    threshold: int = DEFAULT_BREAKER_THRESHOLD
    failures: dict[str, int] = field(default_factory=dict)

    def record(self, target: str, ok: bool) -> None:
        """Count a success (resets) or a failure."""
        self.failures[target] = 0 if ok else self.failures.get(target, 0) + 1

    def is_open(self, target: str) -> bool:
        """True once the target failed ``threshold`` times in a row."""
        return self.failures.get(target, 0) >= self.threshold

    def note(self, target: str) -> str:
        """The text added to a row made while the breaker is open."""
        return f"circuit open after {self.failures.get(target, 0)} consecutive failures"


class Context:
    """Per-batch state: semaphores, a memo of resolved names, the breaker."""

    def __init__(self, concurrency: int, dns_concurrency: int,
                 breaker: Breaker | None = None) -> None:
        self.slots = asyncio.Semaphore(max(1, concurrency))
        self.dns_slots = asyncio.Semaphore(max(1, dns_concurrency))
        self.forwarded_slots = asyncio.Semaphore(FORWARDED_IN_FLIGHT)
        self.breaker = breaker or Breaker()
        self._names: dict[tuple[str, str], asyncio.Future[tuple[list[str], float]]] = {}
        self._lookups: dict[tuple[str, str], asyncio.Future[Lookup]] = {}

    async def ask(self, name: str, server: str, first_timeout_s: float, retries: int,
                  forwarded: bool = False) -> Lookup:
        """Ask ``name`` at ``server`` once per batch: a ``dns`` job and the lookup of a
        ``tcp`` job's host share one query (see :meth:`query`)."""
        key = (server, name)
        if key not in self._lookups:
            self._lookups[key] = asyncio.ensure_future(
                self.query(name, server, first_timeout_s, retries, forwarded))
        return await asyncio.shield(self._lookups[key])

    async def query(self, name: str, server: str, first_timeout_s: float, retries: int,
                    forwarded: bool = False) -> Lookup:
        """A real query of ``name``, retried with doubling timeouts.

        ``forwarded``: the name is expected to go upstream; such queries go one at a time.

        ``latency_ms`` is the answering round trip plus the timed-out waits before it (not
        the time queued for a DNS slot); rcode TIMEOUT when no attempt was answered, ERROR
        when the resolver is not there or the name is malformed.
        """
        out = Lookup()
        for timeout_s in attempt_timeouts(first_timeout_s, retries):
            out.attempts += 1
            try:
                async with self.forwarded_slots if forwarded else self.dns_slots:
                    answer, ms = await query_async(name, server, timeout_s)
            except TimeoutError:
                out.latency_ms += timeout_s * 1000
                out.rcode, out.error = "TIMEOUT", f"no answer from {server} ({out.attempts} tries)"
                continue
            except (DnsFormatError, ValueError) as exc:
                out.rcode, out.error = "ERROR", f"bad name: {exc}"
            except OSError as exc:
                out.rcode, out.error = "ERROR", f"no resolver at {server}: {exc.strerror or exc}"
            else:
                out.answers, out.rcode, out.error = answer.addresses, answer.rcode, ""
                out.latency_ms += ms
            break
        return out

    async def resolve(self, name: str, server: str, timeout_s: float) -> tuple[list[str], float]:
        """Addresses of a host, asked once per batch; raises DnsFailure."""
        if is_ip(name):
            return [name], 0.0
        key = (server, name)
        if key not in self._names:
            self._names[key] = asyncio.ensure_future(self._lookup(name, server, timeout_s))
        return await asyncio.shield(self._names[key])

    async def _lookup(self, name: str, server: str, timeout_s: float) -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        if not server:
            start = loop.time()
            try:
                infos = await loop.getaddrinfo(name, None, family=2, type=1)  # AF_INET, STREAM
            except OSError as exc:
                raise DnsFailure(name, "NXDOMAIN", str(exc)) from exc
            return sorted({str(i[4][0]) for i in infos}), (loop.time() - start) * 1000
        found = await self.ask(name, server, timeout_s, LOOKUP_RETRIES)
        if found.rcode in ("TIMEOUT", "ERROR"):
            raise DnsFailure(name, found.rcode, found.error)
        return addresses_or_raise(name, Answer(0, found.rcode, found.answers)), found.latency_ms
