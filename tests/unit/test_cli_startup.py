"""The `revivadiag` command's start-up: lazy subcommands, the same help, missing modules fail."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import types

import pytest

from revivadiag import cli


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {c.dest: str(c.help) for c in sub._choices_actions}


def test_stub_help_lines_match_the_modules() -> None:
    """The help line kept in COMMANDS is the one each module registers (no drift)."""
    assert _helps(cli.build_parser(lazy=True)) == _helps(cli.build_parser())
    assert list(_helps(cli.build_parser())) == list(cli.COMMANDS)


def test_help_imports_no_heavy_module() -> None:
    """`revivadiag --help` lists every subcommand and loads neither pandas nor docker."""
    code = "\n".join([
        "import sys, contextlib, io",
        "from revivadiag.cli import main",
        "out = io.StringIO()",
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):",
        "    main(['--help'])",
        "heavy = sorted(m for m in ('pandas', 'docker', 'papermill', 'matplotlib')",
        "               if m in sys.modules)",
        f"print(heavy, all(c in out.getvalue() for c in {list(cli.COMMANDS)!r}))",
    ])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "[] True"


def test_only_the_chosen_subcommand_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lazy parser imports the module of the subcommand it runs and no other."""
    imported: list[str] = []
    real = importlib.import_module

    def spy(name: str, package: str | None = None) -> types.ModuleType:
        imported.append(name)
        return real(name, package)

    monkeypatch.setattr("revivadiag.cli.importlib.import_module", spy)
    args = cli.build_parser("audit-source", lazy=True).parse_args(["audit-source", "."])
    assert imported == ["revivadiag.analyze.source_cli"] and args.path == "."


def test_a_missing_subcommand_module_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registered subcommand whose module cannot be imported fails loudly."""
    monkeypatch.setitem(cli.COMMANDS, "ghost", ("revivadiag.no_such_module", "nothing"))
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        cli.build_parser()
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        cli.main(["ghost"])
