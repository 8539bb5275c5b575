"""The report's Roles table: how each role was decided, ambiguous and undecided ones flagged."""

from __future__ import annotations

from types import SimpleNamespace

from revivadiag.collect.roles import ProxyRoute, infer_roles
from revivadiag.runbook.diagnose import roles_frame, roles_table
from revivadiag.schemas import to_frame


def test_roles_table_flags_ambiguous_and_undecided() -> None:
    """Two candidate backends are flagged AMBIGUOUS naming the other; a silent one UNDECIDED."""
    containers = to_frame("containers", [
        {"name": f"s-{s}-1", "service": s, "image": image, "state": "running"}
        for s, image in (("px", "nginx:1"), ("a", "acme/a"), ("b", "acme/b"), ("z", "acme/z"))])
    roles = infer_roles(containers, listening={"z": []},
                        routes=[ProxyRoute("px", "/a/", "a", 1), ProxyRoute("px", "/b/", "b", 2)])
    frame = roles_frame(SimpleNamespace(roles=roles))
    flags = dict(zip(frame["service"], frame["flag"], strict=True))
    assert flags == {"a": "AMBIGUOUS (also: b as backend)", "b": "AMBIGUOUS (also: a as backend)",
                     "px": "", "z": "UNDECIDED"}
    assert frame.set_index("service").loc["px", "decided by"] == "software"
    html = roles_table(SimpleNamespace(roles=roles)).to_html()
    assert "AMBIGUOUS" in html and "image nginx:1 runs nginx" in html
