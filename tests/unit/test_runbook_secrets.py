"""Secret values found in container inspect dicts (for scrubbing run outputs)."""

from __future__ import annotations

from revivadiag.redact import secret_values, url_passwords


def test_secret_values_from_env_labels_and_urls() -> None:
    """Sensitive env values, sensitive labels and URL passwords are collected; others not."""
    inspect = {"Config": {
        "Env": ["POSTGRES_PASSWORD=pgpass99", "APP_ENV=production", "JWT_SECRET=jwt-abc-123",
                "REDIS_URL=redis://:redispw77@redis:6379/0", "EMPTY_TOKEN=", "PATH=/usr/bin"],
        "Labels": {"com.example.api_token": "labeltok1", "team": "ops"},
    }}
    assert secret_values([inspect]) == {"pgpass99", "jwt-abc-123", "redispw77", "labeltok1"}


def test_secret_values_tolerates_missing_parts() -> None:
    """Inspect dicts without Config, Env or Labels give nothing."""
    assert secret_values([{}, {"Config": None}, {"Config": {"Env": None, "Labels": None}}]) == set()


def test_url_passwords_raw_and_decoded() -> None:
    """Percent-encoded passwords are returned both ways; URLs without one give nothing."""
    text = "a postgresql://u:p%2Fw@db/x b http://host/path c https://u@h/"
    assert url_passwords(text) == {"p%2Fw", "p/w"}
