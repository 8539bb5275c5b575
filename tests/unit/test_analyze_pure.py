"""``analyze/`` is pure: frames in, findings out; the engine and the network are collect's."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import revivadiag.analyze

ANALYZE = Path(revivadiag.analyze.__file__).parent
MODULES = sorted(ANALYZE.glob("*.py"))
#: clients of the engine and the network, and revivadiag's own engine layer
IO_MODULES = ("httpx", "docker", "websockets", "requests", "revivadiag.engine")
#: calls that talk to a container
IO_CALLS = ("exec_run", "inspect_container", "get_archive")


def imported(path: Path) -> set[str]:
    """Every module an analyze file imports, at top level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_there_are_analyze_modules() -> None:
    assert len(MODULES) >= 10


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_analyze_module_imports_no_io_client(path: Path) -> None:
    """No analyze module imports httpx, docker, websockets, requests or the engine layer."""
    bad = sorted(m for m in imported(path)
                 if any(m == io or m.startswith(io + ".") for io in IO_MODULES))
    assert bad == [], f"{path.name} imports {bad}: that I/O belongs in revivadiag.collect"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_analyze_module_calls_no_container(path: Path) -> None:
    """No analyze module execs in or inspects a container itself."""
    names = {n.attr for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(n, ast.Attribute)}
    assert not names & set(IO_CALLS), f"{path.name} calls {sorted(names & set(IO_CALLS))}"


def test_importing_analyze_loads_no_io_client() -> None:
    """Importing every analyze module (and what they import) loads none of the I/O clients."""
    names = [f"revivadiag.analyze.{p.stem}" for p in MODULES if p.stem != "__init__"]
    code = ("import importlib, sys\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in ('httpx', 'docker', 'websockets', 'requests') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ANALYZE.parent.parent)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
