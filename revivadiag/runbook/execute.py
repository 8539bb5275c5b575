"""Executing a runbook notebook with papermill, in a kernel of this very interpreter.

:func:`ensure_kernel` makes sure a Jupyter kernel spec starts ``sys.executable`` (so the
notebook sees the same revivadiag, in a fresh ``.venv`` too). :func:`execute` runs the
notebook into a private temporary directory (raw outputs must not touch the output
directory before they are scrubbed) and returns the
executed notebook plus, when a cell failed, a :class:`~revivadiag.errors.RunbookError`
naming the cell. The kernel talks over IPC and its own noise (the interrupt that precedes
every shutdown) stays off stderr; the kernel is started before papermill is imported, so
the two overlap.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from revivadiag.errors import RunbookError

KERNEL_NAME = "revivadiag"
#: names jupyter_client itself replaces by sys.executable when it starts a kernel
_PYTHON_ALIASES = {
    "python",
    f"python{sys.version_info[0]}",
    "python{}.{}".format(*sys.version_info[:2]),
}
RUNBOOKS_ENV = "REVIVADIAG_RUNBOOKS"
CELL_TIMEOUT_S = 900


def runbooks_dir() -> Path:
    """``$REVIVADIAG_RUNBOOKS``, else the ``runbooks/`` folder beside the package."""
    env = os.environ.get(RUNBOOKS_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "runbooks"


def runbook_path(name_or_path: str | Path) -> Path:
    """A runbook by name (``diagnose``) or path; RunbookError when it does not exist."""
    candidate = Path(name_or_path)
    if candidate.suffix != ".ipynb":
        candidate = runbooks_dir() / f"{name_or_path}.ipynb"
    if not candidate.is_file():
        raise RunbookError(
            str(name_or_path), f"notebook {candidate} not found (set ${RUNBOOKS_ENV})"
        )
    return candidate


def kernel_runs_this_python(argv: list[str]) -> bool:
    """True when a kernel spec's argv starts this interpreter."""
    return bool(argv) and (
        argv[0] in _PYTHON_ALIASES or os.path.realpath(argv[0]) == os.path.realpath(sys.executable)
    )


def spec_manager() -> Any:
    """A kernel spec manager over Jupyter's kernel directories plus IPython's legacy one,
    found without importing IPython (which jupyter_client's default does, ~0.3 s here: the
    kernel imports it anyway, this process need not)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_core.paths import jupyter_path

    ipython_dir = os.environ.get("IPYTHONDIR") or os.path.join(os.path.expanduser("~"),
                                                               ".ipython")
    return KernelSpecManager(kernel_dirs=[*jupyter_path("kernels"),
                                          os.path.join(ipython_dir, "kernels")])


def ensure_kernel() -> str:
    """A kernel name whose spec runs ``sys.executable``: ``python3`` when it already does,
    else a ``revivadiag`` spec installed into this environment (or the user's) once."""
    from jupyter_client.kernelspec import NoSuchKernel

    manager = spec_manager()
    for name in ("python3", KERNEL_NAME):
        try:
            if kernel_runs_this_python(manager.get_kernel_spec(name).argv):
                return name
        except NoSuchKernel:
            continue
    return install_kernel()


def install_kernel() -> str:
    """Install the ``revivadiag`` kernel spec for this interpreter; returns its name."""
    from ipykernel.kernelspec import install

    display = f"revivadiag ({sys.executable})"
    try:
        install(kernel_name=KERNEL_NAME, display_name=display, prefix=sys.prefix)
    except OSError:
        install(kernel_name=KERNEL_NAME, display_name=display, user=True)
    return KERNEL_NAME


#: lines of the kernel's own output that say nothing about the run: the interrupt
#: jupyter_client sends before every shutdown, and (older ipykernels on TCP) the warning
#: about unencrypted TCP; everything else the kernel prints is passed on to stderr
KERNEL_NOISE = ("KeyboardInterrupt caught in kernel", "running over TCP without encryption",
                "Use IPC transport or launch with kernel manager-provisioned")
#: modules jsonschema imports for format checks nbformat never makes: ``rfc3987_syntax``
#: compiles ~40 lark grammars on import (1-3 s here) for the ``iri`` formats
UNUSED_FORMAT_MODULES = ("rfc3987_syntax",)
#: seconds a kernel gets to exit after the shutdown request before it is killed
SHUTDOWN_WAIT_S = 5.0


@dataclass
class Execution:
    """An executed notebook (raw: not yet scrubbed) and the error that stopped it, if any."""

    notebook: Any
    error: RunbookError | None
    duration_s: float
    kernel_name: str


def skip_unused_format_checkers() -> None:
    """Make :data:`UNUSED_FORMAT_MODULES` unimportable (jsonschema then leaves their format
    checks out) unless something imported them already."""
    for name in UNUSED_FORMAT_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


#: what a runbook may ask the kernel to preload: a module path, or ``module:function`` (a
#: function called with no arguments once the module is loaded); nothing else reaches the
#: kernel's code
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
                          r"(:[A-Za-z_][A-Za-z0-9_]*)?$")


def runbook_preload(runbook: Path) -> list[str]:
    """The modules a runbook's metadata (``revivadiag.preload``) asks the kernel to import
    in the background as it starts (``module:function`` also calls the function, e.g. a
    cached probe); names that are not plain module paths are ignored.

    >>> import tempfile, json
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "r.ipynb"
    ...     _ = p.write_text(json.dumps({"metadata": {"revivadiag": {
    ...         "preload": ["pandas", "os:getcwd", "os; import x", "os:a()", 3]}}}))
    ...     runbook_preload(p)
    ['pandas', 'os:getcwd']
    """
    try:
        meta = json.loads(runbook.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError, AttributeError):
        return []
    names = (meta.get("revivadiag") or {}).get("preload") or []
    return [n for n in names if isinstance(n, str) and _MODULE_NAME.match(n)]


def preload_arguments(modules: Sequence[str]) -> list[str]:
    """Kernel arguments that import ``modules`` in a daemon thread once the kernel is up,
    so a runbook's first cells find them loaded (or loading: the import lock waits).

    >>> preload_arguments([]), preload_arguments(["pandas"])[0][:31]
    ([], '--IPKernelApp.exec_lines=import')
    """
    if not modules:
        return []
    code = ("import importlib, threading; threading.Thread(target=lambda: "
            "[(lambda m, f: getattr(m, f)() if f else m)"
            "(importlib.import_module(n.partition(':')[0]), n.partition(':')[2]) "
            f"for n in {list(modules)!r}], daemon=True, name='revivadiag-preload').start()")
    return [f"--IPKernelApp.exec_lines={code}"]


#: arguments for an IPython kernel running a runbook: no history database (a runbook's cells
#: are not the user's history, and the kernel is ended without waiting for it to be saved)
IPYKERNEL_ARGUMENTS = ("--HistoryManager.enabled=False",)


def is_ipykernel(argv: Sequence[str]) -> bool:
    """True when a kernel spec's argv starts IPython's kernel (it takes ``--IPKernelApp``
    options).

    >>> is_ipykernel(["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"])
    True
    >>> is_ipykernel(["/usr/bin/R", "--slave", "-e", "IRkernel::main()"])
    False
    """
    return any(part in ("ipykernel", "ipykernel_launcher") for part in argv)


def start_kernel(kernel_name: str, cwd: Path | None, log: IO[bytes],
                 preload: Sequence[str] = (), ipc_dir: Path | None = None,
                 env: Mapping[str, str] | None = None) -> Any:
    """Start kernel ``kernel_name`` now, over IPC (no TCP port, no warning about one), its
    stdout/stderr into ``log``, this process's environment plus ``env``; returns its (async)
    kernel manager. It boots while the caller imports papermill and prepares the notebook,
    and (an IPython kernel) imports ``preload`` meanwhile. The IPC sockets are made in
    ``ipc_dir`` (a path given as absolute: a relative one would be taken in the kernel's
    working directory, i.e. among the run's outputs)."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    where = (ipc_dir or Path(tempfile.gettempdir())).absolute() / "kernel-ipc"
    manager = AsyncKernelManager(kernel_name=kernel_name, transport="ipc", ip=str(where),
                                 kernel_spec_manager=spec_manager())
    arguments: list[str] = []
    spec = manager.kernel_spec
    if spec is not None and is_ipykernel(spec.argv):
        arguments = [*IPYKERNEL_ARGUMENTS, *preload_arguments(preload)]
    run_sync(manager.start_kernel)(cwd=str(cwd or Path.cwd()), stdout=log, stderr=log,
                                   extra_arguments=arguments, env={**os.environ, **(env or {})})
    return manager


def stop_kernel(manager: Any) -> threading.Thread:
    """Ask the kernel to shut down (it runs its exit hooks) and reap it in a thread, so the
    caller writes its outputs meanwhile; a kernel still there after
    :data:`SHUTDOWN_WAIT_S` is killed. The thread is not a daemon: this process does not
    exit before the kernel did."""
    from jupyter_core.utils import run_sync

    with contextlib.suppress(Exception):
        run_sync(manager.request_shutdown)()
    process = getattr(manager.provisioner, "process", None)
    with contextlib.suppress(Exception):
        manager._close_control_socket()

    def reap() -> None:
        if process is not None:
            try:
                process.wait(timeout=SHUTDOWN_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for cleanup in (manager.cleanup_connection_file, manager.cleanup_ipc_files):
            with contextlib.suppress(Exception):
                cleanup()
        if getattr(manager, "_created_context", False):
            with contextlib.suppress(Exception):
                manager.context.destroy(linger=100)

    reaper = threading.Thread(target=reap, name="revivadiag-kernel-reaper")
    reaper.start()
    _PENDING.append((reaper, process))
    return reaper


#: kernels asked to shut down whose reaper has not finished, with their processes
_PENDING: list[tuple[threading.Thread, Any]] = []


def finish_kernels(grace_s: float = 0.0) -> None:
    """Once the outputs are written: give each kernel still exiting ``grace_s`` more, then
    kill it. An IPython kernel takes most of a second to exit after the shutdown request
    (measured here: 0.9 s), and has nothing left to keep: its notebook is saved and it runs
    without a history database (:data:`IPYKERNEL_ARGUMENTS`)."""
    while _PENDING:
        reaper, process = _PENDING.pop()
        reaper.join(grace_s)
        if reaper.is_alive() and process is not None:
            with contextlib.suppress(OSError):
                process.kill()
            reaper.join()


def kernel_messages(text: str) -> list[str]:
    """The lines of a kernel's output worth showing (:data:`KERNEL_NOISE` left out).

    >>> kernel_messages("[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel\\nboom\\n")
    ['boom']
    """
    return [line for line in text.splitlines()
            if line.strip() and not any(noise in line for noise in KERNEL_NOISE)]


#: CSS selectors nbconvert's HTML exporter compiles (soupsieve) on its first export
_REPORT_SELECTORS = ("img:not([alt])", ".jp-Notebook div.jp-Cell-inputWrapper",
                     ".jp-Notebook div.jp-OutputArea-output")


def _preload_report_modules() -> None:
    """While the kernel boots and runs the cells (this process only waits on it), load what
    writing the outputs needs right after: nbconvert and its selectors, pandas and the
    report's modules (a second or more)."""
    with contextlib.suppress(Exception):
        import scrapbook.models  # noqa: F401  (reads the recorded values back)
        import soupsieve

        import revivadiag.runbook.output  # noqa: F401  (pandas, the report's modules)
        from revivadiag.render.report import warm_html

        for selector in _REPORT_SELECTORS:
            soupsieve.compile(selector)
        warm_html()  # nbconvert loaded, its templates compiled


def execute(
    runbook: Path,
    parameters: Mapping[str, Any],
    *,
    kernel_name: str | None = None,
    cwd: Path | None = None,
    cell_timeout_s: int = CELL_TIMEOUT_S,
    prepare: Callable[[], object] | None = None,
    kernel_env: Mapping[str, str] | None = None,
) -> Execution:
    """Run ``runbook`` with ``parameters``; a failing cell gives ``Execution.error``.

    The kernel starts first and boots while papermill is imported and ``prepare`` runs
    (work of the caller's that the run needs, e.g. reading the project's secrets; it may
    still change ``parameters``). When ``prepare`` raises, the kernel is shut down, no cell
    runs and the exception propagates. The kernel's own output goes to a log whose lines
    other than :data:`KERNEL_NOISE` are passed on to stderr afterwards. ``kernel_env`` is
    added to the kernel's environment (not to this process's).
    """
    skip_unused_format_checkers()
    kernel = kernel_name or ensure_kernel()
    started = time.perf_counter()
    failure: Exception | None = None
    executed: Any = None  # the executed notebook papermill returns when no cell failed
    with tempfile.TemporaryDirectory(prefix="revivadiag-run-") as tmp:
        output = Path(tmp) / runbook.name
        log_path = Path(tmp) / "kernel.log"
        with log_path.open("wb") as log:
            manager = start_kernel(kernel, cwd, log, runbook_preload(runbook), ipc_dir=Path(tmp),
                                   env=kernel_env)
            if prepare is not None:
                try:
                    prepare()
                except BaseException:
                    stop_kernel(manager).join()
                    raise
            threading.Thread(target=_preload_report_modules, daemon=True).start()
            try:
                import nbformat
                import papermill as pm

                executed = pm.execute_notebook(
                    str(runbook),
                    str(output),
                    parameters=dict(parameters),
                    kernel_name=kernel,
                    progress_bar=False,
                    cwd=str(cwd) if cwd else None,
                    execution_timeout=cell_timeout_s,
                    start_timeout=120,
                    km=manager,
                    # the notebook is saved once at the end (also when a cell failed)
                    request_save_on_cell_execute=False,
                )
            except Exception as exc:  # a failed cell, or a kernel that died, hung or never started
                failure = exc
            finally:
                stop_kernel(manager)
        for line in kernel_messages(log_path.read_text(encoding="utf-8", errors="replace")):
            print(f"revivadiag: kernel: {line}", file=sys.stderr)
        if executed is None:  # a failed run: the notebook papermill saved, error marked
            if not output.exists():
                raise RunbookError(runbook.stem, f"papermill wrote no notebook: {failure}")
            executed = nbformat.read(str(output), as_version=4)  # type: ignore[no-untyped-call]
    error = None if failure is None else runbook_error(runbook, failure, executed)
    return Execution(executed, error, time.perf_counter() - started, kernel)


def runbook_error(runbook: Path, exc: Exception, notebook: Any) -> RunbookError:
    """A RunbookError for what stopped the run; a failed cell is numbered as in the runbook
    file (0-based), with its error and first line."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(exc, PapermillExecutionError):
        return RunbookError(runbook.stem, f"{type(exc).__name__}: {str(exc)[:500]}")
    injected = injected_index(notebook)
    index = source_cell_index(exc.cell_index, injected_at=injected)
    source = (exc.source or "").strip()
    reason = f"{exc.ename}: {exc.evalue}"
    if source:
        reason += f" (in `{source.splitlines()[0][:80]}`)"
    return RunbookError(runbook.stem, reason, cell=index)


def injected_index(notebook: Any) -> int | None:
    """Index of papermill's ``injected-parameters`` cell, if any."""
    for i, cell in enumerate(notebook.get("cells", [])):
        if "injected-parameters" in (cell.get("metadata", {}).get("tags") or []):
            return i
    return None


def source_cell_index(executed_index: int, *, injected_at: int | None) -> int:
    """Index in the runbook file of a cell of the executed notebook (papermill inserts one
    ``injected-parameters`` cell after the ``parameters`` cell).

    >>> source_cell_index(5, injected_at=2), source_cell_index(1, injected_at=2)
    (4, 1)
    """
    return (
        executed_index - 1
        if injected_at is not None and injected_at < executed_index
        else executed_index
    )
