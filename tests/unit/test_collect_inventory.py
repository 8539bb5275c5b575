"""Project selection and credential lookup: pure functions of what the engine listed."""

from __future__ import annotations

from typing import Any

import pytest

from revivadiag.collect.credentials import Credentials, credentials_from_env
from revivadiag.collect.inventory import PROJECT_LABEL, choose_project, network_ids, projects_of
from revivadiag.errors import ProjectNotFound
from revivadiag.redact import MASK, Scrubber


def _summary(project: str) -> dict[str, Any]:
    return {"Id": "x", "Names": ["/n"], "Labels": {PROJECT_LABEL: project}}


def test_projects_of() -> None:
    """Distinct compose projects, sorted; unlabelled entries ignored."""
    entries = [_summary("b"), _summary("a"), _summary("b"), {"Labels": None}]
    assert projects_of(entries) == ["a", "b"]


@pytest.mark.parametrize(
    ("requested", "known", "expected"),
    [
        ("x", ["x", "y"], "x"),
        (None, ["only"], "only"),
        (None, ["a", "revivatech", "z"], "revivatech"),
    ],
)
def test_choose_project(requested: str | None, known: list[str], expected: str) -> None:
    """Explicit, the only one, else revivatech."""
    assert choose_project(requested, known) == expected


@pytest.mark.parametrize(
    ("requested", "known", "message_part"),
    [
        ("nope", ["a", "b"],
         "no compose project named 'nope' on this engine (projects seen: a, b)"),
        (None, ["a", "b"], "several run; pass a project (projects seen: a, b)"),
        (None, [], "none runs"),
    ],
)
def test_choose_project_errors(requested: str | None, known: list[str], message_part: str) -> None:
    """An unknown or ambiguous project is ProjectNotFound listing the projects seen."""
    with pytest.raises(ProjectNotFound) as info:
        choose_project(requested, known)
    assert message_part in str(info.value)
    assert info.value.known == sorted(known)


def test_network_ids_first_seen_order() -> None:
    """Each attached network once, in first-seen order."""
    c1 = {"NetworkSettings": {"Networks": {"a": {"NetworkID": "1"}, "b": {"NetworkID": "2"}}}}
    c2 = {"NetworkSettings": {"Networks": {"b": {"NetworkID": "2"}, "c": {"NetworkID": "3"}}}}
    assert network_ids([c1, c2, {"NetworkSettings": None}]) == ["1", "2", "3"]


def test_credentials_from_backend_url_first() -> None:
    """DATABASE_URL wins over the parts and the database container's env."""
    creds = credentials_from_env(
        {"DATABASE_URL": "postgresql://app:p%40ss99@db:5432/shop", "DATABASE_USER": "other"},
        {"POSTGRES_PASSWORD": "pgpw1234"}, {})
    assert (creds.db_user, creds.db_password, creds.db_name) == ("app", "p@ss99", "shop")


def test_credentials_from_parts_then_database_env() -> None:
    """Parts from the backend, else POSTGRES_* from the database container."""
    creds = credentials_from_env({"DATABASE_USER": "u", "DATABASE_NAME": "d"},
                                 {"POSTGRES_PASSWORD": "pgpw1234", "POSTGRES_DB": "x"},
                                 {"REDIS_PASSWORD": "rpw12345"})
    assert (creds.db_user, creds.db_password, creds.db_name) == ("u", "pgpw1234", "d")
    assert creds.redis_password == "rpw12345"


def test_redis_password_from_url() -> None:
    """A REDIS_INTERNAL_URL password is used when REDIS_PASSWORD is absent."""
    creds = credentials_from_env({"REDIS_INTERNAL_URL": "redis://:fromurl1@redis:6379/0"}, {}, {})
    assert creds.redis_password == "fromurl1"


def test_credentials_never_show_their_secrets() -> None:
    """repr hides the passwords; register() teaches a Scrubber to mask them."""
    creds = Credentials("u", "dbsecret1", "d", "redissecret1")
    assert "dbsecret1" not in repr(creds) and "redissecret1" not in repr(creds)
    scrubber = creds.register(Scrubber())
    assert scrubber.scrub("a dbsecret1 b redissecret1") == f"a {MASK} b {MASK}"
