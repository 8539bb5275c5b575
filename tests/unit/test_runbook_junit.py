"""JUnit XML: one testcase per finding and KPI, escaped, scrubbed, valid XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from revivadiag import schemas
from revivadiag.redact import secret_scrubber
from revivadiag.runbook.junit import error_junit, to_junit, write_junit

FINDINGS = schemas.to_frame("findings", [
    {"id": "RD-NET-001", "severity": "error", "category": "policy",
     "title": "frontend reaches <database>", "evidence": "open in 0.2 ms, pw=topsecret1\x07",
     "remediation": "README § Network isolation"},
    {"id": "RD-KPI-002", "severity": "warning", "category": "kpi", "title": "slow"},
    {"id": "RD-INF-001", "severity": "info", "category": "naming", "title": "fine"},
])
KPIS = schemas.to_frame("kpis", [
    {"kpi": "dns_resolution", "title": "DNS", "value": 0.5, "unit": "ms", "threshold": 5,
     "comparison": "<", "samples": 10, "passed": True},
    {"kpi": "connection_reuse", "title": "Reuse", "value": 2.0, "unit": "%", "threshold": 90,
     "comparison": ">", "samples": 50, "passed": False, "detail": "50 new connections"},
    {"kpi": "proxy_overhead", "title": "Proxy", "passed": None, "detail": "no proxy"},
])


def test_counts_and_cases(tmp_path: Path) -> None:
    """Errors and missed KPIs fail, unmeasured KPIs are skipped, the rest pass."""
    path = write_junit(tmp_path / "out" / "junit.xml", to_junit(FINDINGS, KPIS, suite="s"))
    root = ET.parse(path).getroot()  # noqa: S314 - our own file
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("6", "2", "1")
    names = [c.get("name") for c in suite.iter("testcase")]
    assert names[0] == "RD-NET-001 frontend reaches <database>"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["RD-NET-001 frontend reaches <database>", "Reuse"]


def test_text_is_scrubbed_and_valid(tmp_path: Path) -> None:
    """Secrets are masked and control characters dropped; the file parses."""
    path = write_junit(tmp_path / "j.xml",
                       to_junit(FINDINGS, KPIS, scrubber=secret_scrubber(["topsecret1"])))
    text = path.read_text()
    assert "topsecret1" not in text
    assert "pw=***" in text
    assert "&lt;database&gt;" in text
    ET.fromstring(text.encode())  # noqa: S314 - our own output


def test_error_junit(tmp_path: Path) -> None:
    """A run that did not finish is one errored testcase."""
    root = error_junit("diagnose demo", "cell 4 failed: EngineUnreachable").getroot()
    assert root is not None and root.get("errors") == "1"
    error = root.find("testsuite/testcase/error")
    assert error is not None and "EngineUnreachable" in str(error.get("message"))
