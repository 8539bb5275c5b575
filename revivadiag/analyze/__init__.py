"""Analysis: access policy, KPIs, config and source audits, findings."""
