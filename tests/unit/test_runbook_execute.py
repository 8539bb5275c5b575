"""Executing notebooks with papermill in a kernel of this interpreter (no engine needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from revivadiag.errors import RunbookError
from revivadiag.runbook.execute import (
    ensure_kernel,
    execute,
    kernel_messages,
    kernel_runs_this_python,
    runbook_path,
    source_cell_index,
)


def write(path: Path, *cells: object) -> Path:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_kernel_runs_this_python() -> None:
    """Specs starting `python` (jupyter_client substitutes it) or sys.executable qualify."""
    assert kernel_runs_this_python(["python", "-m", "ipykernel_launcher"])
    assert kernel_runs_this_python([sys.executable, "-m", "ipykernel_launcher"])
    assert not kernel_runs_this_python(["/opt/other/bin/python3.9", "-m", "ipykernel_launcher"])
    assert not kernel_runs_this_python([])


def test_ensure_kernel_names_a_spec_of_this_python() -> None:
    """The kernel chosen starts this interpreter."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(ensure_kernel())
    assert kernel_runs_this_python(spec.argv)


def test_runbook_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runbook is found by name in $REVIVADIAG_RUNBOOKS; a missing one is a RunbookError."""
    write(tmp_path / "demo.ipynb")
    monkeypatch.setenv("REVIVADIAG_RUNBOOKS", str(tmp_path))
    assert runbook_path("demo") == tmp_path / "demo.ipynb"
    with pytest.raises(RunbookError, match="not found"):
        runbook_path("nope")


def test_source_cell_index() -> None:
    """Cells after papermill's injected cell shift back by one."""
    assert source_cell_index(4, injected_at=2) == 3
    assert source_cell_index(1, injected_at=2) == 1
    assert source_cell_index(4, injected_at=None) == 4


@pytest.mark.slow
def test_execute_injects_parameters_and_runs_in_this_python(tmp_path: Path) -> None:
    """Parameters reach the kernel, which is this very interpreter."""
    nb = write(
        tmp_path / "ok.ipynb",
        new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("import sys\nprint(n * 2, sys.executable)"),
    )
    run = execute(nb, {"n": 21}, cwd=tmp_path)
    assert run.error is None
    out = run.notebook.cells[-1].outputs[0]["text"]
    assert out.split() == ["42", sys.executable]
    assert not list(tmp_path.glob("*.ipynb"))[1:]  # nothing but the input in cwd


@pytest.mark.slow
def test_failed_cell_is_named_by_its_index_in_the_runbook(tmp_path: Path) -> None:
    """A raising cell gives a RunbookError with the cell's index in the runbook file."""
    nb = write(
        tmp_path / "bad.ipynb",
        new_markdown_cell("# title"),
        new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("y = x + 1"),
        new_code_cell("raise ValueError('broken on purpose')"),
    )
    run = execute(nb, {"x": 5})
    assert run.error is not None
    assert run.error.cell == 3
    assert "ValueError: broken on purpose" in run.error.reason
    assert "raise ValueError" in run.error.reason
    assert run.notebook.cells  # the executed notebook is returned for the report


@pytest.mark.slow
def test_no_kernel_noise_on_stderr(tmp_path: Path) -> None:
    """A run says nothing on stderr about the kernel's shutdown interrupt or its transport;
    what a kernel prints to its own stderr (here: on purpose) is still passed on."""
    nb = write(
        tmp_path / "quiet.ipynb",
        new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
        new_code_cell("import sys\nprint('kernel says hello', file=sys.__stderr__, flush=True)"),
    )
    code = ("import sys\nfrom pathlib import Path\n"
            "from revivadiag.runbook.execute import execute\n"
            f"run = execute(Path({str(nb)!r}), {{'n': 2}})\n"
            "sys.exit(0 if run.error is None else 3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "KeyboardInterrupt" not in done.stderr and "TCP" not in done.stderr
    assert "revivadiag: kernel: kernel says hello" in done.stderr
    assert done.stdout == ""


def test_kernel_messages_drop_only_the_noise() -> None:
    """The interrupt and TCP warnings go; any other line stays, in order."""
    text = ("[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel\n"
            "[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All ...\n"
            "Traceback (most recent call last):\n  boom\n")
    assert kernel_messages(text) == ["Traceback (most recent call last):", "  boom"]
