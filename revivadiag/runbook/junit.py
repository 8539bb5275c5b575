"""JUnit XML for CI systems: one testcase per finding and per KPI (xml.etree, no dependency).

An ``error`` finding is a failed testcase; ``warning`` and ``info`` findings pass and carry
their evidence in ``system-out``. A KPI that misses its target fails; one that could not be
measured is skipped. Text is scrubbed of secrets and stripped of characters XML 1.0 forbids.

>>> import pandas as pd
>>> from revivadiag import schemas
>>> f = schemas.to_frame("findings", [{"id": "RD-1", "severity": "error", "category": "policy",
...                                    "title": "frontend reaches database", "evidence": "open"}])
>>> xml = to_junit(f, schemas.empty_frame("kpis"), suite="diagnose demo")
>>> xml.getroot().get("failures"), xml.getroot().get("tests")
('1', '1')
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from revivadiag.redact import Scrubber

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: Any, scrubber: Scrubber | None = None) -> str:
    """Text safe for XML 1.0 (forbidden control characters dropped) and scrubbed."""
    value = "" if text is None or (not isinstance(text, str) and pd.isna(text)) else str(text)
    value = _INVALID_XML.sub("", value)
    return scrubber.scrub(value) if scrubber else value


def finding_cases(findings: pd.DataFrame, scrubber: Scrubber | None = None) -> list[ET.Element]:
    """One ``testcase`` per finding."""
    cases = []
    for f in findings.to_dict("records"):
        case = ET.Element(
            "testcase",
            classname=clean(f"revivadiag.findings.{f.get('category') or 'other'}", scrubber),
            name=clean(f"{f.get('id')} {f.get('title')}", scrubber),
        )
        body = clean(f"{f.get('evidence')}\nremediation: {f.get('remediation')}", scrubber)
        if f.get("severity") == "error":
            failure = ET.SubElement(
                case, "failure", message=clean(f.get("title"), scrubber), type="error"
            )
            failure.text = body
        else:
            ET.SubElement(case, "system-out").text = f"{clean(f.get('severity'))}: {body}"
        cases.append(case)
    return cases


def kpi_cases(kpis: pd.DataFrame, scrubber: Scrubber | None = None) -> list[ET.Element]:
    """One ``testcase`` per KPI: failure when it misses its target, skipped when unmeasured."""
    cases = []
    for k in kpis.to_dict("records"):
        case = ET.Element(
            "testcase",
            classname="revivadiag.kpis",
            name=clean(k.get("title") or k.get("kpi"), scrubber),
        )
        value, passed = k.get("value"), k.get("passed")
        measured = (
            f"{clean(value)} {clean(k.get('unit'))} (target {clean(k.get('comparison'))} "
            f"{clean(k.get('threshold'))}, {clean(k.get('samples'))} samples)"
        )
        if passed is None or pd.isna(passed):
            ET.SubElement(
                case, "skipped", message=clean(k.get("detail") or "not measured", scrubber)
            )
        elif not bool(passed):
            failure = ET.SubElement(case, "failure", message=f"missed: {measured}", type="kpi")
            failure.text = clean(k.get("detail"), scrubber)
        else:
            ET.SubElement(case, "system-out").text = measured
        cases.append(case)
    return cases


def to_junit(
    findings: pd.DataFrame,
    kpis: pd.DataFrame,
    suite: str = "revivadiag diagnose",
    scrubber: Scrubber | None = None,
) -> ET.ElementTree:
    """The JUnit document: a ``testsuites`` root holding one ``testsuite``."""
    cases: Iterable[ET.Element] = [*finding_cases(findings, scrubber), *kpi_cases(kpis, scrubber)]
    cases = list(cases)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    counts = {
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
    }
    root = ET.Element("testsuites", {"name": clean(suite, scrubber), **counts})
    testsuite = ET.SubElement(root, "testsuite", {"name": clean(suite, scrubber), **counts})
    testsuite.extend(cases)
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(path: Path, tree: ET.ElementTree) -> Path:
    """Write the document with an XML declaration; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path


def error_junit(suite: str, reason: str, scrubber: Scrubber | None = None) -> ET.ElementTree:
    """A document with one errored testcase: the runbook itself did not finish."""
    case = ET.Element("testcase", classname="revivadiag.runbook", name=clean(suite, scrubber))
    ET.SubElement(case, "error", message=clean(reason, scrubber), type="RunbookError")
    counts = {"tests": "1", "failures": "0", "errors": "1", "skipped": "0"}
    root = ET.Element("testsuites", {"name": clean(suite, scrubber), **counts})
    ET.SubElement(root, "testsuite", {"name": clean(suite, scrubber), **counts}).append(case)
    ET.indent(root)
    return ET.ElementTree(root)
