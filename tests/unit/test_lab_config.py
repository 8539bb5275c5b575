"""LabConfig, port options, instance state files and the image recipe hashes (pure code)."""

from __future__ import annotations

from pathlib import Path

import pytest

from revivadiag.errors import LabError, ParameterError
from revivadiag.lab import LabConfig, state
from revivadiag.lab.compose import compose_env, compose_files
from revivadiag.lab.config import DEFAULT_HOST_PORTS, merge_ports, parse_port_option
from revivadiag.lab.images import BuildReport, ImageResult, hash_files, read_packages


@pytest.mark.parametrize(
    ("variant", "service", "name"),
    [("current", "frontend", "p_new_frontend"), ("current", "redis", "p_new_redis"),
     ("target", "backend", "p_backend"), ("target", "database", "p_database")],
)
def test_container_names(variant: str, service: str, name: str) -> None:
    """current names are <prefix>_new_<service>, target names <prefix>_<service>."""
    assert LabConfig(prefix="p", variant=variant).container_name(service) == name


@pytest.mark.parametrize(
    ("variant", "profile", "published"),
    [("current", "development", ("frontend", "backend", "database", "redis")),
     ("current", "production", ("frontend", "backend", "database", "redis")),
     ("target", "development", ("frontend", "backend", "database", "redis")),
     ("target", "production", ("frontend",))],
)
def test_published_services(variant: str, profile: str, published: tuple[str, ...]) -> None:
    """Only target+production hides backend, database and Redis from the host."""
    assert LabConfig(variant=variant, profile=profile).published_services == published


@pytest.mark.parametrize(
    ("variant", "networks"),
    [("current", ("x_network",)),
     ("target", ("x_frontend_net", "x_backend_net", "x_cache_net"))],
)
def test_networks(variant: str, networks: tuple[str, ...]) -> None:
    """One flat network in current; frontend, backend and cache networks in target."""
    assert LabConfig(prefix="x", variant=variant).networks == networks


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"variant": "blue"}, "variant"), ({"profile": "staging"}, "profile"),
     ({"prefix": "Bad-Prefix"}, "prefix"), ({"prefix": ""}, "prefix"),
     ({"ports": {"frontend": 0}}, "frontend port"), ({"ports": {"cache": 1234}}, "port service"),
     ({"ports": {"backend": 3010}}, "backend port")],
)
def test_bad_config_is_a_parameter_error(kwargs: dict[str, object], name: str) -> None:
    """Unknown variant/profile, bad prefix, bad or clashing port: ParameterError naming it."""
    with pytest.raises(ParameterError) as info:
        LabConfig(**kwargs)  # type: ignore[arg-type]
    assert info.value.name == name


def test_ports_default_to_the_seed_and_accept_overrides() -> None:
    """Missing services keep 3010/3011/5435/6383."""
    assert merge_ports({"frontend": 13010}) == {**DEFAULT_HOST_PORTS, "frontend": 13010}


@pytest.mark.parametrize("text", ["frontend", "frontend=", "frontend=abc", "=3010", "cache=1"])
def test_bad_port_option(text: str) -> None:
    """--port must be SERVICE=PORT with a known service."""
    with pytest.raises(ParameterError):
        parse_port_option(text)


def test_config_round_trips_through_dict() -> None:
    """The state file form restores the same config."""
    cfg = LabConfig(prefix="abc", variant="target", profile="production", ports={"redis": 7000})
    assert LabConfig.from_dict(cfg.to_dict()) == cfg


def test_compose_files_and_env() -> None:
    """target+development adds the override; the env carries ports, profile and secrets."""
    cfg = LabConfig(prefix="abc", variant="target", ports={"database": 15435})
    env = compose_env(cfg, {"DATABASE_PASSWORD": "pw"})
    assert [f.name for f in compose_files("target", "development")] == [
        "target.yml", "target.development.yml"]
    assert [f.name for f in compose_files("current", "production")] == ["current.yml"]
    assert (env["LAB_PREFIX"], env["APP_ENV"], env["DATABASE_HOST_PORT"],
            env["DATABASE_PASSWORD"]) == ("abc", "development", "15435", "pw")


def test_secrets_are_generated_once_and_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ensure_secrets writes three random values with mode 0600 and reuses them after."""
    monkeypatch.setenv("REVIVADIAG_STATE_DIR", str(tmp_path))
    first = state.ensure_secrets("abc")
    path = tmp_path / "labs" / "abc" / "secrets.env"
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert state.ensure_secrets("abc") == first == state.read_secrets("abc")
    assert sorted(first) == sorted(state.SECRET_KEYS) and len(set(first.values())) == 3
    state.forget("abc")
    with pytest.raises(LabError, match="no secrets"):
        state.read_secrets("abc")


def test_env_format_round_trip() -> None:
    """format_env/parse_env are inverses; comments and blanks are ignored."""
    values = {"A": "1", "B_SECRET": "x-y_z"}
    assert state.parse_env("# c\n\n" + state.format_env(values)) == values


def test_read_packages_drops_comments() -> None:
    """Package lists allow comments and blank lines."""
    assert read_packages("# head\nnginx-light\n\n curl  # tools\n") == ["nginx-light", "curl"]


def test_recipe_hash_follows_content(tmp_path: Path) -> None:
    """The hash changes when a file's content or name changes, and only then."""
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = hash_files(tmp_path, "base1")
    assert hash_files(tmp_path, "base1") == first
    assert hash_files(tmp_path, "base2") != first
    (tmp_path / "Dockerfile").write_text("FROM y\n")
    assert hash_files(tmp_path, "base1") != first


def test_build_report_summary() -> None:
    """The summary lists each image and the built/cached totals."""
    report = BuildReport([ImageResult("a:1", True, 1.5, "f" * 64),
                          ImageResult("b:1", False, 0.0, "e" * 64)], seconds=1.6)
    assert (report.built, report.cached) == (["a:1"], ["b:1"])
    assert report.summary().splitlines()[-1] == "total 1.6 s (1 built, 1 cached)"
