"""The seed's five key performance indicators, computed from snapshot frames.

=========================  =========================================================  =======
KPI                        measured as                                                target
=========================  =========================================================  =======
startup_time               a measured value passed in, else the spread of the          < 30 s
                           running containers' ``started_at``
inter_service_latency      ``latency`` frame: direct path, phase ``total``, p50         < 10 ms
proxy_overhead             proxy ``total`` p50 minus direct ``total`` p50               < 5 ms
dns_resolution             ``dns`` frame: p50 ``latency_ms`` of answered queries        < 5 ms
connection_reuse           1 - new proxy->backend connections / proxied requests       > 90 %
                           (:mod:`revivadiag.collect.connections`)
=========================  =========================================================  =======

A KPI that cannot be measured has ``value`` NaN and ``passed`` NA, with the reason in
``detail`` — never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from revivadiag import schemas
from revivadiag.collect.live_facts import ReuseMeasurement


@dataclass(frozen=True)
class Kpi:
    """One KPI's definition: key, human title, unit, threshold and direction."""

    key: str
    title: str
    unit: str
    threshold: float
    comparison: str  # "<" or ">"

    def passes(self, value: float) -> bool:
        """Whether ``value`` meets the target."""
        return value < self.threshold if self.comparison == "<" else value > self.threshold


KPIS: dict[str, Kpi] = {
    k.key: k
    for k in (
        Kpi("startup_time", "Container startup time", "s", 30.0, "<"),
        Kpi("inter_service_latency", "Inter-service latency (direct, p50)", "ms", 10.0, "<"),
        Kpi("proxy_overhead", "Proxy overhead (proxy - direct, p50)", "ms", 5.0, "<"),
        Kpi("dns_resolution", "DNS resolution of container names (p50)", "ms", 5.0, "<"),
        Kpi("connection_reuse", "Proxy-to-backend connection reuse", "%", 90.0, ">"),
    )
}

#: containers started further apart than this were not started together: no startup figure
MAX_STARTUP_SPREAD_S = 600.0


def _row(key: str, value: float | None, samples: int, detail: str) -> dict[str, Any]:
    kpi = KPIS[key]
    measured = value is not None and not pd.isna(value)
    return {
        "kpi": key,
        "title": kpi.title,
        "value": float(value) if measured and value is not None else float("nan"),
        "unit": kpi.unit,
        "threshold": kpi.threshold,
        "comparison": kpi.comparison,
        "samples": samples,
        "passed": kpi.passes(float(value)) if measured and value is not None else pd.NA,
        "detail": detail,
    }


def startup_kpi(containers: pd.DataFrame, measured_s: float | None = None) -> dict[str, Any]:
    """From a measured start time when given, else the spread of ``started_at``."""
    if measured_s is not None:
        return _row("startup_time", measured_s, 1, "measured start-to-healthy time passed in")
    running = containers[containers["state"] == "running"] if len(containers) else containers
    starts = running["started_at"].dropna() if len(running) else pd.Series([], dtype=object)
    if len(starts) == 0:
        return _row("startup_time", None, 0, "no running container with a start time")
    spread = (starts.max() - starts.min()).total_seconds()
    if spread > MAX_STARTUP_SPREAD_S:
        return _row(
            "startup_time", None, len(starts),
            f"containers started {spread:.0f} s apart (not one start-up); "
            "pass a measured startup time",
        )
    return _row(
        "startup_time", spread, len(starts),
        f"spread of started_at over {len(starts)} running containers (first to last start)",
    )


def _phase_row(
    latency: pd.DataFrame, path: str, phase: str, source: str | None = None
) -> dict[str, Any] | None:
    """The row for ``path``/``phase`` (from ``source`` if given), or None.

    Without a source, a container's vantage point is preferred over the host's (the host
    reaches published ports through Docker's port forwarding), then the most samples.
    """
    if len(latency) == 0:
        return None
    rows = latency[(latency["path"] == path) & (latency["phase"] == phase)]
    rows = rows[rows["p50_ms"].notna() & (rows["samples"].fillna(0) > 0)]
    if source is not None:
        rows = rows[rows["source"] == source]
    if len(rows) == 0:
        return None
    ranked = sorted(rows.to_dict("records"),
                    key=lambda r: (r["source"] == "host", -int(r["samples"])))
    best: dict[str, Any] = ranked[0]
    return best


def common_source(latency: pd.DataFrame) -> str | None:
    """A source with both a direct and a proxy ``total`` row (a container before the host)."""
    if len(latency) == 0:
        return None
    total = latency[(latency["phase"] == "total") & (latency["samples"].fillna(0) > 0)]
    both = set(total[total["path"] == "direct"]["source"]) & set(
        total[total["path"] == "proxy"]["source"])
    if not both:
        return None
    return str(sorted(both, key=lambda s: (s == "host", str(s)))[0])


def latency_kpi(latency: pd.DataFrame) -> dict[str, Any]:
    """Direct path (service to service) total p50, connect p50 in the detail."""
    total = _phase_row(latency, "direct", "total")
    if total is None:
        return _row("inter_service_latency", None, 0, "no direct latency samples")
    connect = _phase_row(latency, "direct", "connect", str(total["source"]))
    conn = f", connect p50 {connect['p50_ms']:.2f} ms" if connect is not None else ""
    detail = (
        f"{total['source']} -> {total['url']}: total p50 {total['p50_ms']:.2f} ms, "
        f"p95 {total['p95_ms']:.2f} ms{conn} ({total['method']})"
    )
    return _row("inter_service_latency", total["p50_ms"], int(total["samples"]), detail)


def proxy_overhead_kpi(latency: pd.DataFrame) -> dict[str, Any]:
    """Proxy minus direct total p50 from the same source, over the smaller sample count."""
    source = common_source(latency)
    if source is None:
        return _row("proxy_overhead", None, 0,
                    "no source with both direct and proxy latency samples")
    direct = _phase_row(latency, "direct", "total", source)
    proxy = _phase_row(latency, "proxy", "total", source)
    assert direct is not None and proxy is not None  # common_source guarantees both
    overhead = float(proxy["p50_ms"]) - float(direct["p50_ms"])
    n_direct, n_proxy = int(direct["samples"]), int(proxy["samples"])
    note = "" if n_direct == n_proxy else f"; sample counts differ ({n_proxy} vs {n_direct})"
    detail = (
        f"from {source}: proxy {proxy['url']} p50 {proxy['p50_ms']:.2f} ms - direct "
        f"{direct['url']} p50 {direct['p50_ms']:.2f} ms{note}"
    )
    return _row("proxy_overhead", overhead, min(n_direct, n_proxy), detail)


def dns_kpi(dns: pd.DataFrame) -> dict[str, Any]:
    """p50 of the answered queries' ``latency_ms``."""
    answered = dns[(dns["rcode"] == "NOERROR") & dns["latency_ms"].notna()] if len(dns) else dns
    if len(answered) == 0:
        return _row("dns_resolution", None, 0, "no answered DNS queries")
    p50 = float(answered["latency_ms"].median())
    p95 = float(answered["latency_ms"].quantile(0.95))
    methods = ", ".join(sorted(set(answered["method"].astype(str))))
    detail = f"{len(answered)} answered queries at 127.0.0.11, p95 {p95:.2f} ms ({methods})"
    return _row("dns_resolution", p50, len(answered), detail)


def reuse_kpi(reuse: ReuseMeasurement | None) -> dict[str, Any]:
    """From a :class:`ReuseMeasurement` (NA when it was not measured)."""
    if reuse is None:
        return _row("connection_reuse", None, 0, "not measured (live checks off)")
    return _row("connection_reuse", reuse.reuse_pct, reuse.requests, reuse.detail)


def compute_kpis(
    containers: pd.DataFrame,
    latency: pd.DataFrame,
    dns: pd.DataFrame,
    reuse: ReuseMeasurement | None = None,
    startup_s: float | None = None,
) -> pd.DataFrame:
    """The ``kpis`` frame, one row per KPI in the seed's order."""
    rows = [
        startup_kpi(containers, startup_s),
        latency_kpi(latency),
        proxy_overhead_kpi(latency),
        dns_kpi(dns),
        reuse_kpi(reuse),
    ]
    return schemas.to_frame("kpis", rows)
