"""The seed's five KPIs from hand-built frames (pure computation)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from revivadiag import schemas
from revivadiag.analyze.kpis import KPIS, common_source, compute_kpis
from revivadiag.collect.live_facts import ReuseMeasurement


def _containers(*starts: str, state: str = "running") -> pd.DataFrame:
    return schemas.to_frame("containers", [
        {"name": f"p_{i}", "service": f"s{i}", "state": state, "started_at": t}
        for i, t in enumerate(starts)
    ])


def _lat(path: str, source: str, phase: str, p50: float, samples: int = 20) -> dict[str, Any]:
    return {"path": path, "source": source, "url": f"http://{path}/api/health", "phase": phase,
            "samples": samples, "errors": 0, "p50_ms": p50, "p95_ms": p50 * 2,
            "p99_ms": p50 * 3, "mean_ms": p50, "method": "setns"}


def _dns(*latencies: float, rcode: str = "NOERROR") -> pd.DataFrame:
    return schemas.to_frame("dns", [
        {"source": "p_a", "query": f"n{i}", "rcode": rcode, "latency_ms": v, "method": "setns",
         "answers": ["10.0.0.1"]} for i, v in enumerate(latencies)
    ])


def _kpi(frame: pd.DataFrame, key: str) -> dict[str, Any]:
    rec: dict[str, Any] = frame.set_index("kpi").loc[key].to_dict()
    return rec


LATENCY = schemas.to_frame("latency", [
    _lat("direct", "p_frontend", "connect", 0.4),
    _lat("direct", "p_frontend", "total", 2.0),
    _lat("proxy", "p_frontend", "total", 2.5),
    _lat("direct", "host", "total", 7.0, samples=30),
    _lat("proxy", "host", "total", 3.0, samples=30),
])


def test_all_five_kpis_in_the_seeds_order_with_their_targets() -> None:
    """One row per KPI, thresholds and comparisons from the seed."""
    k = compute_kpis(_containers(), schemas.empty_frame("latency"), schemas.empty_frame("dns"))
    schemas.validate("kpis", k)
    got = list(zip(k["kpi"], k["threshold"], k["comparison"], k["unit"], strict=True))
    assert got == [("startup_time", 30.0, "<", "s"), ("inter_service_latency", 10.0, "<", "ms"),
                   ("proxy_overhead", 5.0, "<", "ms"), ("dns_resolution", 5.0, "<", "ms"),
                   ("connection_reuse", 90.0, ">", "%")]
    assert k["passed"].isna().all()  # nothing measured -> NA, never a guess
    assert k["value"].isna().all()


@pytest.mark.parametrize(
    ("starts", "value", "passed"),
    [
        (("2026-01-01T00:00:00Z", "2026-01-01T00:00:12Z", "2026-01-01T00:00:05Z"), 12.0, True),
        (("2026-01-01T00:00:00Z", "2026-01-01T00:00:45Z"), 45.0, False),
    ],
)
def test_startup_from_the_started_at_spread(starts: tuple[str, ...], value: float,
                                             passed: bool) -> None:
    """First to last start of the running containers."""
    row = _kpi(compute_kpis(_containers(*starts), LATENCY, _dns(1.0)), "startup_time")
    assert (row["value"], row["passed"], row["samples"]) == (value, passed, len(starts))


def test_startup_spread_of_hours_is_not_a_startup_time() -> None:
    """Containers started an hour apart were not started together: NA with the reason."""
    row = _kpi(compute_kpis(_containers("2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"),
                            LATENCY, _dns()), "startup_time")
    assert pd.isna(row["passed"]) and "3600 s apart" in row["detail"]


def test_startup_measured_value_wins() -> None:
    """A measured start-up time passed in is used as is."""
    row = _kpi(compute_kpis(_containers(), LATENCY, _dns(), startup_s=31.5), "startup_time")
    assert (row["value"], row["passed"]) == (31.5, False)


def test_latency_uses_the_direct_total_p50_from_a_container() -> None:
    """The container's vantage point is preferred over the host's, connect p50 in the detail."""
    row = _kpi(compute_kpis(_containers(), LATENCY, _dns()), "inter_service_latency")
    assert (row["value"], row["samples"], row["passed"]) == (2.0, 20, True)
    assert "connect p50 0.40 ms" in row["detail"]


def test_proxy_overhead_is_proxy_minus_direct_from_the_same_source() -> None:
    """2.5 - 2.0 from p_frontend, not 3.0 - 7.0 mixed across sources."""
    row = _kpi(compute_kpis(_containers(), LATENCY, _dns()), "proxy_overhead")
    assert (row["value"], row["samples"], row["passed"]) == (0.5, 20, True)
    assert "from p_frontend" in row["detail"]


def test_proxy_overhead_needs_both_paths_from_one_source() -> None:
    """Direct from one source and proxy from another cannot be subtracted."""
    lat = schemas.to_frame("latency", [_lat("direct", "a", "total", 1.0),
                                       _lat("proxy", "b", "total", 9.0)])
    assert common_source(lat) is None
    row = _kpi(compute_kpis(_containers(), lat, _dns()), "proxy_overhead")
    assert pd.isna(row["value"]) and "no source with both" in row["detail"]


def test_proxy_overhead_over_threshold_fails_and_notes_unequal_samples() -> None:
    """8 ms of overhead fails; differing sample counts are said, the smaller one is used."""
    lat = schemas.to_frame("latency", [_lat("direct", "host", "total", 1.0, samples=20),
                                       _lat("proxy", "host", "total", 9.0, samples=18)])
    row = _kpi(compute_kpis(_containers(), lat, _dns()), "proxy_overhead")
    assert (row["value"], row["samples"], row["passed"]) == (8.0, 18, False)
    assert "sample counts differ (18 vs 20)" in row["detail"]


def test_dns_p50_counts_only_answered_queries() -> None:
    """NXDOMAIN rows do not count; the p50 of the rest is compared with 5 ms."""
    dns = pd.concat([_dns(1.0, 2.0, 9.0), _dns(500.0, rcode="NXDOMAIN")], ignore_index=True)
    row = _kpi(compute_kpis(_containers(), LATENCY, dns), "dns_resolution")
    assert (row["value"], row["samples"], row["passed"]) == (2.0, 3, True)


@pytest.mark.parametrize(("pct", "passed"), [(0.0, False), (90.0, False), (98.0, True)])
def test_reuse_from_a_measurement(pct: float, passed: bool) -> None:
    """> 90 % passes; exactly 90 % does not."""
    m = ReuseMeasurement(50, 50, 1, pct, "http://127.0.0.1:1/x", "procfs", "measured")
    row = _kpi(compute_kpis(_containers(), LATENCY, _dns(), reuse=m), "connection_reuse")
    assert (row["value"], row["passed"], row["samples"]) == (pct, passed, 50)


def test_unmeasured_reuse_is_na() -> None:
    """A measurement that could not read the socket tables gives NA, not 0 or 100."""
    m = ReuseMeasurement(50, 0, None, None, "http://127.0.0.1:1/x", "exec", "unreadable")
    row = _kpi(compute_kpis(_containers(), LATENCY, _dns(), reuse=m), "connection_reuse")
    assert pd.isna(row["value"]) and pd.isna(row["passed"]) and row["detail"] == "unreadable"


def test_kpi_definitions_compare_in_the_right_direction() -> None:
    """`<` targets pass below, `>` targets above."""
    assert KPIS["dns_resolution"].passes(4.9) and not KPIS["dns_resolution"].passes(5.0)
    assert KPIS["connection_reuse"].passes(90.1) and not KPIS["connection_reuse"].passes(90.0)
