"""Redaction at collection: keys, URLs with credentials, known secret values."""

from __future__ import annotations

import random

import pytest

from revivadiag.redact import MASK, Scrubber, is_sensitive_key, redact_env, redact_url


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("DATABASE_PASSWORD", True), ("JWT_SECRET", True), ("GITHUB_TOKEN", True),
        ("REDIS_PASSWORD", True), ("AWS_SECRET_ACCESS_KEY", True), ("API_KEY", True),
        ("DATABASE_HOST", False), ("NEXT_PUBLIC_API_URL", False), ("PATH", False),
        ("KEYBOARD_LAYOUT", False),
    ],
)
def test_sensitive_keys(key: str, expected: bool) -> None:
    """Secret-looking names are sensitive, ordinary ones are not."""
    assert is_sensitive_key(key) is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://app:s3cret@db:5432/app", f"postgresql://app:{MASK}@db:5432/app"),
        ("redis://:pw1234@redis:6379/0", f"redis://:{MASK}@redis:6379/0"),
        ("http://backend:3011/api", "http://backend:3011/api"),
        ("see http://a:b@c/ and http://d/", f"see http://a:{MASK}@c/ and http://d/"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    """Only the password part of a URL is masked."""
    assert redact_url(url) == expected


def test_redact_env_marks_url_with_credentials_sensitive() -> None:
    """An env value that is a URL with a password is masked and flagged."""
    shown = redact_env("DATABASE_URL", "postgresql://u:pw99@db/x")
    assert shown == (f"postgresql://u:{MASK}@db/x", True)
    assert redact_env("DATABASE_PASSWORD", "pw99") == (MASK, True)
    assert redact_env("APP_ENV", "production") == ("production", False)


def test_scrubber_replaces_known_values() -> None:
    """Registered secret values vanish from free text, longest first."""
    s = Scrubber(["hunter22", "hunter2222"])
    assert s.scrub("a hunter2222 b hunter22") == f"a {MASK} b {MASK}"
    assert not Scrubber([])


def test_redact_url_searches_pieces_as_the_whole_pattern_would() -> None:
    """Searching only the whitespace-separated pieces that hold ``://`` masks exactly what
    the pattern masks over the whole text (random texts from URL-ish characters)."""
    from revivadiag import redact

    rng = random.Random(20261130)
    alphabet = "ab1+.-/:@ \n\tZ9" * 3 + "="
    fragments = ["postgres://", "redis://:", "://", "u:pw@", "@h", " x://y:z@w "]
    masked = 0
    for _ in range(3000):
        parts = [rng.choice(fragments) if rng.random() < 0.3 else
                 "".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(6)]
        text = "".join(parts)
        whole = redact._URL_CREDENTIALS.sub(lambda m: m.group("head") + redact.MASK, text)
        assert redact_url(text) == whole, text
        masked += whole != text
    assert masked > 100  # the corpus does hold credentials to mask
