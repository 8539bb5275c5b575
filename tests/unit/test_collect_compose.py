"""Compose files read by the user's own Compose CLI and by the built-in fallback, on the same
files: same model, same errors, secrets redacted on both paths.

The CLI tests run the real `docker-compose`/`docker compose` (``config`` talks to no engine);
without one they are skipped locally and fail under CI=true. The v2 JSON output, which no CLI
here prints, is checked through an injected runner (parsing only).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from revivadiag.collect import compose
from revivadiag.collect.compose import load_compose, read_compose
from revivadiag.collect.compose_cli import ComposeCli, find_compose_cli
from revivadiag.errors import ComposeFileError

SECRET = "s3cret-db-pw"
API_SECRET = "api-key-123456"

SHOP = """\
x-common: &common
  restart: unless-stopped
  labels:
    team: shop
x-revivadiag:
  stack: shop
services:
  proxy:
    <<: *common
    image: nginx:1.25
    command: ["nginx", "-g", "daemon off;"]
    ports: ["127.0.0.1:${PROXY_PORT:-8080}:80", "443"]
    networks:
      front:
        aliases: [www]
    depends_on:
      api:
        condition: service_healthy
    x-revivadiag:
      role: proxy
  api:
    image: shop/api:${TAG:-latest}
    command: gunicorn -b 0.0.0.0:8000 app:app
    expose: ["8000", "9100-9101"]
    env_file: api.env
    environment:
      DATABASE_URL: postgresql://shop:${DB_PASSWORD:?set DB_PASSWORD}@db:5432/shop
    labels: ["revivadiag.role=backend"]
    healthcheck:
      test: ["CMD", "true"]
    networks: [front, back]
  worker:
    image: shop/api:latest
    command: ["celery", "--pw", "${DB_PASSWORD}"]
    networks: [back]
    profiles: [jobs]
    depends_on: [db]
  db:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: ${DB_PASSWORD:?}
    healthcheck:
      disable: true
    networks: [back]
    volumes: ["dbdata:/var/lib/postgresql/data"]
  cache:
    image: redis:7
networks:
  front: {}
  back:
    internal: true
  shared:
    external: true
    name: shop_shared
volumes:
  dbdata: {}
"""
OVERRIDE = """\
services:
  proxy:
    ports: ["127.0.0.1:9443:443"]
  api:
    environment:
      LOG_LEVEL: debug
"""


def _cli() -> ComposeCli:
    cli = find_compose_cli()
    if cli is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no Compose CLI is installed")
        pytest.skip("no Compose CLI installed")
    return cli


READERS = ["cli", "builtin"]


def _reader(name: str) -> ComposeCli | None:
    return _cli() if name == "cli" else None


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """A project folder: compose.yml, an override, .env and an env_file."""
    (tmp_path / "compose.yml").write_text(SHOP)
    (tmp_path / "compose.override.yml").write_text(OVERRIDE)
    (tmp_path / ".env").write_text("PROXY_PORT=8081\n")
    (tmp_path / "api.env").write_text(f"API_KEY={API_SECRET}\nWORKERS=4\n")
    return tmp_path


def _files(folder: Path) -> list[Path]:
    return [folder / "compose.yml", folder / "compose.override.yml"]


@pytest.mark.parametrize("reader", READERS)
def test_shop_model(shop: Path, reader: str) -> None:
    """Everything the roles and the topology need, read by either path."""
    m = load_compose(_files(shop), project="Shop", env={"DB_PASSWORD": SECRET},
                     cli=_reader(reader), profiles=["jobs"])
    assert m.project == "shop"
    assert m.reader.startswith("docker") if reader == "cli" else m.reader == "built-in"
    assert sorted(m.services) == ["api", "cache", "db", "proxy", "worker"]
    proxy, api, db = m.services["proxy"], m.services["api"], m.services["db"]
    assert proxy.ports == [compose.ComposePort("127.0.0.1", 8081, 80),
                           compose.ComposePort("127.0.0.1", 9443, 443)]
    assert proxy.container_ports == [80, 443]
    assert proxy.extensions == {"x-revivadiag": {"role": "proxy"}}
    assert proxy.labels == {"team": "shop"}
    assert proxy.aliases == {"front": ["www"]}
    assert proxy.command == ["nginx", "-g", "daemon off;"]
    assert proxy.depends_on == {"api": "service_healthy"}
    assert api.command == ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]
    assert api.expose == [8000, 9100, 9101] and api.ports == []
    assert api.labels == {"revivadiag.role": "backend"}
    assert api.networks == ["back", "front"] and api.has_healthcheck
    assert api.image == "shop/api:latest"
    assert not db.has_healthcheck and db.networks == ["back"]
    assert m.services["worker"].depends_on == {"db": "service_started"}
    assert m.services["cache"].networks == ["default"]
    nets = {k: (n.name, n.internal, n.external) for k, n in m.networks.items()}
    assert nets == {"front": ("shop_front", False, False), "back": ("shop_back", True, False),
                    "shared": ("shop_shared", False, True), "default": ("shop_default", False,
                                                                        False)}


def test_both_paths_give_the_same_model_and_dict(shop: Path) -> None:
    """The CLI's normalisation and the built-in one agree on the same files."""
    cli, builtin = (read_compose(_files(shop), project="shop", env={"DB_PASSWORD": SECRET},
                                 cli=c, profiles=None) for c in (_cli(), None))
    m_cli = compose.model_from_dict(cli.data, origin=cli.origin)
    m_builtin = compose.model_from_dict(builtin.data, origin=builtin.origin)
    assert m_cli == m_builtin
    for name in m_cli.services:
        for key in ("labels", "environment", "ports", "expose", "depends_on", "networks",
                    "x-revivadiag", "profiles"):
            assert cli.data["services"][name].get(key) == builtin.data["services"][name].get(key), \
                (name, key)
    assert cli.data["x-revivadiag"] == builtin.data["x-revivadiag"] == {"stack": "shop"}
    assert cli.data["networks"] == builtin.data["networks"]


@pytest.mark.parametrize("reader", READERS)
def test_secrets_are_redacted_everywhere(shop: Path, reader: str) -> None:
    """Interpolated and env_file secrets never appear in the dict, by key or elsewhere."""
    data = compose.load_compose_dict(_files(shop), env={"DB_PASSWORD": SECRET},
                                     cli=_reader(reader))
    text = json.dumps(data)
    assert SECRET not in text and API_SECRET not in text
    api = data["services"]["api"]["environment"]
    assert api["API_KEY"] == "***" and api["WORKERS"] == "4"
    assert api["DATABASE_URL"] == "postgresql://shop:***@db:5432/shop"
    assert data["services"]["worker"]["command"] == ["celery", "--pw", "***"]


@pytest.mark.parametrize("reader", READERS)
def test_profiles_select_services(shop: Path, reader: str) -> None:
    """No profile active: the `jobs` worker is left out; None keeps every service."""
    kw: dict[str, Any] = {"env": {"DB_PASSWORD": SECRET}, "cli": _reader(reader)}
    assert "worker" not in load_compose(_files(shop), **kw).services
    assert "worker" in compose.load_compose_dict(_files(shop), profiles=None, **kw)["services"]


@pytest.mark.parametrize("reader", READERS)
def test_missing_required_variable(shop: Path, reader: str) -> None:
    """Strict: an error naming the variable. Lenient: a placeholder, the file still reads."""
    with pytest.raises(ComposeFileError, match="DB_PASSWORD") as err:
        load_compose(_files(shop), env={}, cli=_reader(reader))
    assert SECRET not in str(err.value)
    m = load_compose(_files(shop), env={}, strict=False, cli=_reader(reader))
    assert m.services["proxy"].ports[0].host_port == 8081


@pytest.mark.parametrize("reader", READERS)
def test_lenient_host_port_is_unpublished(tmp_path: Path, reader: str) -> None:
    """A host port from a missing ${P:?} reads as unpublished, on both paths."""
    f = tmp_path / "c.yml"
    f.write_text("services:\n  a:\n    image: x\n    ports: ['127.0.0.1:${P:?}:80']\n")
    assert load_compose(f, env={}, strict=False, cli=_reader(reader)).services["a"].ports == []


BAD = {
    "bad-port": ("services: {a: {image: x, ports: ['x:y:z:w']}}\n", r"ports"),
    "unknown-top-level-key": ("services: {a: {image: x}}\nfoo: 1\n", r"foo"),
    "unknown-service-key": ("services: {a: {image: x, imagez: y}}\n", r"imagez"),
    "malformed-yaml": ("services:\n  a: [\n", r"line \d+, column \d+: not valid YAML"),
    "not-a-mapping": ("- a\n- b\n", r"expected a mapping at the top level"),
    "undeclared-network": ("services: {a: {image: x, networks: [nope]}}\n", r"nope"),
}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_are_named_errors(tmp_path: Path, reader: str, case: str) -> None:
    """What Compose rejects, either path rejects, naming the file and the problem."""
    text, problem = BAD[case]
    f = tmp_path / f"{case}.yml"
    f.write_text(text)
    with pytest.raises(ComposeFileError, match=problem) as err:
        load_compose(f, cli=_reader(reader))
    assert err.value.path == str(f)


@pytest.mark.parametrize("reader", READERS)
def test_missing_file(tmp_path: Path, reader: str) -> None:
    """A file that does not exist is named before any CLI runs."""
    with pytest.raises(ComposeFileError, match="no such file") as err:
        load_compose([tmp_path / "nope.yml"], cli=_reader(reader))
    assert err.value.path == str(tmp_path / "nope.yml")


def test_without_a_compose_cli_on_path_the_builtin_reader_is_used(
        shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PATH stripped of docker and docker-compose: the fallback reads the same project."""
    empty = shop / "bin"
    empty.mkdir()
    assert find_compose_cli(search_path=str(empty)) is None
    with_cli = load_compose(_files(shop), env={"DB_PASSWORD": SECRET})
    monkeypatch.setenv("PATH", str(empty))
    without = load_compose(_files(shop), env={"DB_PASSWORD": SECRET})
    assert without.reader == "built-in"
    assert replace(without, reader="") == replace(with_cli, reader="")


def test_builtin_reader_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    """extends and include need the Compose CLI: said, not silently ignored."""
    f = tmp_path / "c.yml"
    f.write_text("services:\n  a: {image: x, extends: {service: b}}\n  b: {image: y}\n")
    with pytest.raises(ComposeFileError, match="extends needs the Compose CLI"):
        load_compose(f, cli=None)


def test_reset_and_override_tags_merge_in_the_builtin_reader(tmp_path: Path) -> None:
    """Compose's !reset drops an inherited value, !override replaces it whole."""
    (tmp_path / "a.yml").write_text("services:\n  a:\n    image: x\n    ports: ['1:1']\n"
                                    "    labels: {k: v, j: w}\n")
    (tmp_path / "b.yml").write_text("services:\n  a:\n    ports: !reset []\n"
                                    "    labels: !override {n: m}\n")
    m = load_compose([tmp_path / "a.yml", tmp_path / "b.yml"], cli=None)
    assert m.services["a"].ports == [] and m.services["a"].labels == {"n": "m"}


# ---------------------------------------------------------------- the v2 CLI, by its output

V2_OUTPUT = {
    "name": "shop",
    "services": {
        "proxy": {"image": "nginx", "command": ["nginx"], "labels": {"team": "shop"},
                  "networks": {"front": {"aliases": ["www"]}},
                  "ports": [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 80,
                             "published": "8081", "protocol": "tcp"}],
                  "x-revivadiag": {"role": "proxy"},
                  "depends_on": {"api": {"condition": "service_healthy", "required": True}}},
        "api": {"image": "api", "networks": {"default": None}, "expose": ["8000"],
                "environment": {"DB_PASSWORD": SECRET, "URL": f"redis://:{SECRET}@cache:6379"}},
    },
    "networks": {"front": {"name": "shop_front"}, "default": {"name": "shop_default"}},
    "x-revivadiag": {"stack": "shop"},
}


def test_v2_json_output_through_an_injected_runner(tmp_path: Path) -> None:
    """argv of a v2 call (-f per file, --project-name, --project-directory, --profile,
    config --format json) and its JSON read into the same shape."""
    f = tmp_path / "compose.yml"
    f.write_text("services: {proxy: {image: nginx}, api: {image: api}}\n")
    calls: list[list[str]] = []

    def runner(argv: Sequence[str], env: Mapping[str, str], cwd: Path,
               timeout_s: float) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, json.dumps(V2_OUTPUT), "")

    cli = ComposeCli(("docker", "compose"), "2.24.6")
    doc = read_compose([f], project="shop", profiles=["jobs"], cli=cli, runner=runner)
    assert calls == [["docker", "compose", "-f", str(f), "--project-name", "shop",
                      "--project-directory", str(tmp_path), "--profile", "jobs", "config",
                      "--format", "json"]]
    assert doc.reader == "docker compose 2.24.6"
    m = compose.model_from_dict(doc.data)
    assert m.services["proxy"].ports == [compose.ComposePort("127.0.0.1", 8081, 80)]
    assert m.services["proxy"].extensions == {"x-revivadiag": {"role": "proxy"}}
    assert m.services["api"].expose == [8000] and m.services["api"].networks == ["default"]
    assert SECRET not in json.dumps(doc.data)


@pytest.mark.parametrize(
    ("outcome", "problem"),
    [(subprocess.TimeoutExpired(["docker"], 1.0), "gave no answer in 1 s"),
     (subprocess.CompletedProcess([], 1, "", f"services.a: bad value {SECRET}\n"),
      "rejects it: services.a: bad value \\*\\*\\*")],
)
def test_cli_failures_are_typed_and_scrubbed(tmp_path: Path, outcome: Any, problem: str) -> None:
    """A CLI that hangs or fails gives a ComposeFileError, secret values masked."""
    f = tmp_path / "compose.yml"
    f.write_text("services: {a: {image: x, environment: {DB_PASSWORD: '${P}'}}}\n")

    def runner(argv: Sequence[str], env: Mapping[str, str], cwd: Path,
               timeout_s: float) -> subprocess.CompletedProcess[str]:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[no-any-return]

    cli = ComposeCli(("docker-compose",), "1.29.2")
    with pytest.raises(ComposeFileError, match=problem) as err:
        load_compose(f, env={"DB_PASSWORD": SECRET}, cli=cli, runner=runner, timeout_s=1.0)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("reader", READERS)
def test_relative_file_with_another_project_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    """A file named relative to the current directory is the file read, whatever the project
    directory (the CLI runs there); the project is named after that directory."""
    (tmp_path / "compose.yml").write_text("services: {a: {image: x, labels: [k=v]}}\n")
    (tmp_path / "Proj Dir").mkdir()
    monkeypatch.chdir(tmp_path)
    m = load_compose(Path("compose.yml"), project_directory=tmp_path / "Proj Dir",
                     cli=_reader(reader))
    assert m.project == "projdir" and m.services["a"].labels == {"k": "v"}
