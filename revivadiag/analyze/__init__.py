"""Analysis: access policy, KPIs, config and source audits, findings.

>>> from revivadiag.analyze import diagnose, load_policy
>>> d = diagnose(rd.snapshot(), environment="production")          # doctest: +SKIP
>>> d.findings[["id", "severity", "title"]]                        # doctest: +SKIP

Modules: ``policy`` (expected access policy, compare with reachability), ``kpis`` (the seed's
five KPIs), ``config_audit`` + ``proxy_audit`` (per-environment checks; ``live`` gathers the
live facts, :mod:`revivadiag.collect.nginx_conf` parses the proxy's configuration),
``source_audit`` (hard-coded URLs in a source tree; ``source_eval`` scores it,
``source_cli`` is ``revivadiag audit-source``), ``findings`` (the findings frame) and
``diagnosis`` (one call for all).
"""

from __future__ import annotations

from revivadiag._lazy import lazy_exports

#: public name -> module that defines it (imported on first access, keeping the CLI fast)
_LAZY = {
    "Diagnosis": "revivadiag.analyze.diagnosis",
    "diagnose": "revivadiag.analyze.diagnosis",
    "Policy": "revivadiag.analyze.policy",
    "load_policy": "revivadiag.analyze.policy",
    "compare": "revivadiag.analyze.policy",
    "compute_kpis": "revivadiag.analyze.kpis",
    "audit": "revivadiag.analyze.config_audit",
    "audit_source": "revivadiag.analyze.source_audit",
    "build_findings": "revivadiag.analyze.findings",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_exports("revivadiag.analyze", _LAZY, globals())
