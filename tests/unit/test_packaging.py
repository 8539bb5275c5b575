"""environment.yml and pyproject.toml must list the same packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# conda-forge names that differ from PyPI's
CONDA_TO_PYPI = {"docker-py": "docker", "redis-py": "redis"}


def _name(requirement: str) -> str:
    """The bare, normalised distribution name of a requirement string."""
    name = re.split(r"[\[<>=!~;\s]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject_names() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["dev"])
    return {_name(r) for r in reqs}


def _environment_names() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            n = _name(dep)
            names.add(CONDA_TO_PYPI.get(n, n))
    return names - {"python", "pip"}


def test_environment_lists_the_same_packages_as_pyproject() -> None:
    """Every dependency (runtime and dev) appears in both files."""
    assert _environment_names() == _pyproject_names()


def test_environment_pins_python_311_and_installs_the_package() -> None:
    """The conda env is Python 3.11 and its pip section installs this package."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [["-e ."]]


def test_console_script_is_declared() -> None:
    """`revivadiag` is installed as a console script."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["scripts"] == {"revivadiag": "revivadiag.cli:main"}
