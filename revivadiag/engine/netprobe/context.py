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

from .dnswire import addresses_or_raise, is_ip, query_async
from .outcomes import DnsFailure

DEFAULT_BREAKER_THRESHOLD = 3
MAX_BACKOFF_S = 1.0


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
        self.breaker = breaker or Breaker()
        self._names: dict[tuple[str, str], asyncio.Future[tuple[list[str], float]]] = {}

    async def ask(self, name: str, server: str, timeout_s: float) -> tuple[list[str], str, float]:
        """One real query (a ``dns`` job): (addresses, rcode, latency ms); may time out."""
        async with self.dns_slots:
            answer, ms = await query_async(name, server, timeout_s)
        return answer.addresses, answer.rcode, ms

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
        try:
            async with self.dns_slots:
                answer, ms = await query_async(name, server, timeout_s)
        except TimeoutError:
            raise DnsFailure(name, "TIMEOUT", f"no answer from {server}") from None
        except ConnectionRefusedError:
            raise DnsFailure(name, "ERROR", f"no resolver at {server}") from None
        return addresses_or_raise(name, answer), ms
