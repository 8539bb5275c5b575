"""revivadiag's public surface: exactly __all__, every name importable (httpx's guard)."""

from __future__ import annotations

import revivadiag

EXPECTED = {
    "CredentialsError", "EngineError", "EngineUnreachable", "HealthConfig",
    "InputError", "NetworkErrorType", "NotFoundError", "ParameterError",
    "ProjectNotFound", "RevivadiagError", "ServiceNotFound", "Snapshot", "SnapshotMeta",
    "__version__", "snapshot", "diagnose", "Diagnosis", "draw_topology",
    "HealthMonitor", "collect_stats", "collect_events", "EventWatcher",
}


def test_all_is_the_expected_surface() -> None:
    """Adding or removing a public name is a deliberate change to this list."""
    assert set(revivadiag.__all__) == EXPECTED
    assert len(revivadiag.__all__) == len(set(revivadiag.__all__))


def test_every_exported_member_resolves() -> None:
    """Each name in __all__ is an attribute, and public ones carry their module's name."""
    for name in revivadiag.__all__:
        member = getattr(revivadiag, name)
        if name.startswith("__"):
            continue
        assert member.__module__.startswith("revivadiag"), name
        assert member.__doc__, f"{name} has no docstring"


def test_unknown_attribute_is_an_attribute_error() -> None:
    """The lazy loader does not invent names."""
    try:
        revivadiag.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
