"""The user's own Compose CLI, asked to normalise a project: ``docker compose config --format
json`` (the v2 plugin) or ``docker-compose config`` (v1, which prints YAML).

Commands are argv lists run under a timeout (:func:`run_command`; tests inject another
runner); a failure becomes a :class:`~revivadiag.errors.ComposeFileError` naming the file
and Compose's own words, secret values masked.

>>> v1 = ComposeCli(("/usr/bin/docker-compose",), "1.29.2")
>>> v2 = ComposeCli(("docker", "compose"), "2.24.6")
>>> str(v1), v1.json, str(v2), v2.json
('docker-compose 1.29.2', False, 'docker compose 2.24.6', True)
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from revivadiag import yamlio
from revivadiag.errors import ComposeFileError
from revivadiag.redact import Scrubber

#: Seconds one ``config`` (or ``version``) call of the Compose CLI may take.
COMPOSE_TIMEOUT_S = 30.0
#: Variables of the caller's environment kept when an explicit ``env`` replaces it.
_BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "XDG_RUNTIME_DIR",
             "XDG_CONFIG_HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CONTEXT",
             "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")
#: Variables that would make the CLI read other files or another project than the ones given.
_DROPPED_ENV = ("COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PATH_SEPARATOR",
                "COMPOSE_ENV_FILES")


@dataclass(frozen=True)
class ComposeCli:
    """A Compose command line: ``("docker", "compose")`` or ``("docker-compose",)``."""

    argv: tuple[str, ...]
    version: str

    @property
    def json(self) -> bool:
        """v2 prints ``config --format json``; v1 prints only YAML."""
        return not self.version.startswith("1.")

    def __str__(self) -> str:
        """``docker compose 2.24.6`` or ``docker-compose 1.29.2``."""
        return " ".join([Path(self.argv[0]).name, *self.argv[1:], self.version])


#: ``runner(argv, env, cwd, timeout_s)``: how commands run (tests inject their own).
Runner = Callable[[Sequence[str], Mapping[str, str], Path, float],
                  "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str], env: Mapping[str, str], cwd: Path,
                timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run argv (never a shell) with no stdin; output captured as text."""
    return subprocess.run(
        list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
        check=False, stdin=subprocess.DEVNULL,
    )


def find_compose_cli(search_path: str | None = None,
                     runner: Runner = run_command) -> ComposeCli | None:
    """The Compose CLI on ``search_path`` (default ``$PATH``): the ``docker compose`` plugin,
    else ``docker-compose``; None when neither answers."""
    env = {**os.environ, **({"PATH": search_path} if search_path is not None else {})}
    candidates: list[tuple[str, ...]] = []
    if docker := shutil.which("docker", path=search_path):
        candidates.append((docker, "compose"))
    if legacy := shutil.which("docker-compose", path=search_path):
        candidates.append((legacy,))
    key = tuple(candidates)
    if runner is not run_command:
        return _probe(candidates, env, runner)
    with _FOUND_LOCK:  # a second caller waits for the first one's answer
        if key not in _FOUND:
            _FOUND[key] = _probe(candidates, env, runner)
        return _FOUND[key]


#: executables found -> the CLI they gave (asking a CLI its version costs ~0.5 s)
_FOUND: dict[tuple[tuple[str, ...], ...], ComposeCli | None] = {}
_FOUND_LOCK = threading.Lock()


def script_version(path: str) -> str | None:
    """The version a Python entry script of Compose v1 pins (``__requires__ =
    'docker-compose==1.29.2'`` in pip's and Debian's ``/usr/bin/docker-compose``), read
    from the file instead of starting it (a Python start costs ~0.5 s); None for anything
    else, e.g. a Compose v2 binary.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix="-compose") as f:
    ...     _ = f.write("#!/usr/bin/python3\\n__requires__ = 'docker-compose==1.29.2'\\n")
    ...     f.flush()
    ...     script_version(f.name)
    '1.29.2'
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if not head.startswith(b"#!") or b"python" not in head.split(b"\n", 1)[0]:
        return None
    found = re.search(rb"__requires__\s*=\s*['\"]docker-compose==(\d+\.\d+\.\d+)['\"]", head)
    return found.group(1).decode() if found else None


def _probe(candidates: list[tuple[str, ...]], env: Mapping[str, str],
           runner: Runner) -> ComposeCli | None:
    for argv in candidates:
        if runner is run_command and len(argv) == 1 and (pinned := script_version(argv[0])):
            return ComposeCli(argv, pinned)
        try:
            proc = runner([*argv, "version", "--short"], env, Path.cwd(), COMPOSE_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = proc.stdout.strip().removeprefix("v")
        if proc.returncode == 0 and re.match(r"^\d+\.", version):
            return ComposeCli(argv, version)
    return None


def cli_environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """The CLI's environment: the caller's (``env`` None) or the basics plus ``env``."""
    base = dict(os.environ) if env is None else {
        k: v for k, v in os.environ.items() if k in _BASE_ENV}
    base.update(env or {})
    for key in _DROPPED_ENV:
        if env is None or key not in env:
            base.pop(key, None)
    return base


def compose_config(
    cli: ComposeCli,
    files: Sequence[Path],
    *,
    project: str,
    project_directory: Path,
    profiles: Iterable[str],
    environ: Mapping[str, str],
    env_file: Path | None = None,
    timeout_s: float = COMPOSE_TIMEOUT_S,
    runner: Runner = run_command,
    scrubber: Scrubber | None = None,
) -> dict[str, Any]:
    """What ``<cli> config`` prints for these files, parsed; ComposeFileError otherwise.
    The answer is kept for the rest of the process (see :data:`_ANSWERS`)."""
    options = [a for p in profiles for a in ("--profile", p)]

    def ask() -> dict[str, Any]:
        stdout = _run_config(cli, files, project=project, project_directory=project_directory,
                             options=options,
                             args=["config", *(["--format", "json"] if cli.json else [])],
                             environ=environ, env_file=env_file, timeout_s=timeout_s,
                             runner=runner, scrubber=scrubber)
        origin = ",".join(str(f) for f in files)
        try:
            data = json.loads(stdout) if cli.json else yamlio.safe_load(stdout)
        except (ValueError, yaml.YAMLError) as exc:
            raise ComposeFileError(origin,
                                   f"{cli} config printed something unreadable") from exc
        if not isinstance(data, dict):
            raise ComposeFileError(origin, f"{cli} config printed no project")
        return data

    key = _answer_key([*cli.argv, project, str(project_directory), *options], environ,
                      [*files, *([env_file] if env_file else [])],
                      optional=[project_directory / ".env"])
    if runner is not run_command or key is None:
        return ask()
    with _ANSWERS_LOCK:  # the same question asked meanwhile by another thread: wait for it
        asked = _ASKED.setdefault(key, threading.Lock())
    with asked:
        if key not in _ANSWERS:
            _take_handoff()
        if key not in _ANSWERS:
            _ANSWERS[key] = ask()
        return copy.deepcopy(_ANSWERS[key])


#: Compose's ``config`` answers in this process, by :func:`_answer_key` (a call costs
#: 0.3-0.8 s; a runbook asks for the same project more than once). ``config --hash`` is not
#: kept: it depends on the images, which may be rebuilt meanwhile.
_ANSWERS: dict[str, dict[str, Any]] = {}
_ASKED: dict[str, threading.Lock] = {}
_ANSWERS_LOCK = threading.Lock()

#: The file of answers another process asked Compose for this one (``revivadiag diagnose``
#: asks while its runbook's kernel boots, so that the kernel need not): its path, in the
#: environment this process was started with. The file is written once, whole (an empty
#: one when there was nothing to ask), in a private directory; it is read once and removed.
HANDOFF_ENV = "REVIVADIAG_COMPOSE_ANSWERS"
#: Seconds to wait for a promised hand-off file before asking Compose itself.
HANDOFF_WAIT_S = COMPOSE_TIMEOUT_S + 5.0
_HANDOFF_TAKEN = threading.Event()


def write_handoff(path: Path, keys: Iterable[str] | None = None) -> int:
    """Write the answers of this process (those of ``keys``, default all) to ``path`` for
    the process started with :data:`HANDOFF_ENV` naming it: readable by the owner alone,
    renamed into place whole. Returns how many answers it holds."""
    with _ANSWERS_LOCK:
        wanted = list(_ANSWERS) if keys is None else [k for k in keys if k in _ANSWERS]
        answers = {k: _ANSWERS[k] for k in wanted}
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(answers, out)
    os.replace(partial, path)
    return len(answers)


def _take_handoff(wait_s: float = HANDOFF_WAIT_S) -> None:
    """Once per process: the answers handed over in :data:`HANDOFF_ENV`'s file, waited for
    up to ``wait_s`` (the other process writes it as soon as it has them), into
    :data:`_ANSWERS`. A missing, late or unreadable file only means asking Compose here."""
    where = os.environ.get(HANDOFF_ENV)
    if not where or _HANDOFF_TAKEN.is_set():
        return
    _HANDOFF_TAKEN.set()
    path = Path(where)
    deadline = time.monotonic() + wait_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        answers = json.loads(path.read_text(encoding="utf-8"))
        path.unlink()
    except (OSError, ValueError):
        return
    if isinstance(answers, dict):
        with _ANSWERS_LOCK:
            for key, answer in answers.items():
                if isinstance(answer, dict):
                    _ANSWERS.setdefault(str(key), answer)


def _answer_key(command: Sequence[str], environ: Mapping[str, str],
                files: Sequence[Path], optional: Sequence[Path] = ()) -> str | None:
    """A digest of everything a ``config`` answer depends on: the command, its environment
    and each file's size and modification time (None when a file cannot be stat'ed: then
    nothing is cached), and whether each ``optional`` file (the project's ``.env``) is
    there, with its size and time. Only the digest is kept, never the environment.

    >>> a = _answer_key(["c"], {"A": "1"}, [])
    >>> a == _answer_key(["c"], {"A": "1"}, []), a == _answer_key(["c"], {}, [])
    (True, False)
    """
    digest = hashlib.sha256()
    try:
        stats = [(str(f.absolute()), f.stat().st_mtime_ns, f.stat().st_size) for f in files]
    except OSError:
        return None
    for extra in optional:
        try:
            stats.append((str(extra.absolute()), extra.stat().st_mtime_ns, extra.stat().st_size))
        except OSError:
            stats.append((str(extra.absolute()), -1, -1))
    for part in (list(command), sorted(environ.items()), stats):
        digest.update(json.dumps(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _run_config(cli: ComposeCli, files: Sequence[Path], *, project: str,
                project_directory: Path, options: Sequence[str], args: Sequence[str],
                environ: Mapping[str, str], env_file: Path | None, timeout_s: float,
                runner: Runner, scrubber: Scrubber | None) -> str:
    """Run ``<cli> -f ... --project-name P --project-directory D [options] <args>`` in the
    project directory; its stdout, or ComposeFileError with Compose's words (secrets masked)."""
    argv = [*cli.argv]
    for f in files:
        argv += ["-f", str(f.absolute())]  # the CLI runs in the project directory
    argv += ["--project-name", project, "--project-directory", str(project_directory)]
    if env_file is not None:
        argv += ["--env-file", str(env_file)]
    argv += [*options, *args]
    origin = ",".join(str(f) for f in files)
    what = f"{cli} {' '.join(args)}"
    scrub = scrubber or Scrubber()
    try:
        proc = runner(argv, environ, project_directory, timeout_s)
    except subprocess.TimeoutExpired:
        raise ComposeFileError(origin, f"{what} gave no answer in {timeout_s:g} s") from None
    except OSError as exc:
        raise ComposeFileError(origin, f"cannot run {cli}: {exc.strerror or exc}") from exc
    if proc.returncode != 0:
        problem = scrub.scrub(cli_problem(proc.stderr or proc.stdout))
        raise ComposeFileError(file_named(problem, files) or origin,
                               f"{cli} rejects it: {problem}")
    return proc.stdout


def cli_problem(text: str) -> str:
    """The Compose CLI's complaint on one line, without its generic advice.

    >>> cli_problem("The Compose file './a.yml' is invalid because:\\n'foo' does not match\\n"
    ...             "\\nYou might be seeing this error because ...\\nFor more on ...")
    "The Compose file './a.yml' is invalid because: 'foo' does not match"
    """
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("You might be seeing this error", "For more on the Compose file")):
            break
        if line and not line.lower().startswith("warn"):
            lines.append(line)
    joined = " ".join(lines) or text.strip() or "no error message"
    return joined[:600]


def file_named(message: str, files: Sequence[Path]) -> str:
    """The given file a message names (its path or its name), or ""."""
    for f in files:
        names = (str(f), str(f.absolute()), f"'./{f.name}'", f'"./{f.name}"')
        if any(n in message for n in names):
            return str(f)
    return ""


def config_hashes(
    cli: ComposeCli,
    files: Sequence[Path],
    *,
    project: str,
    project_directory: Path,
    environ: Mapping[str, str],
    env_file: Path | None = None,
    timeout_s: float = COMPOSE_TIMEOUT_S,
    runner: Runner = run_command,
    scrubber: Scrubber | None = None,
) -> dict[str, str]:
    """service -> the config hash Compose labels its container with
    (``com.docker.compose.config-hash``), from ``<cli> config --hash=*``: what Compose
    compares to decide that ``up`` must recreate a container. ComposeFileError on failure.

    >>> def fake(argv, env, cwd, timeout):
    ...     out = "db 93bc1445f3267169\\napi 5d511db734ae7853\\n"
    ...     return subprocess.CompletedProcess(argv, 0, out, "")
    >>> config_hashes(ComposeCli(("docker-compose",), "1.29.2"), [Path("c.yml")], project="p",
    ...               project_directory=Path("."), environ={}, runner=fake)
    {'db': '93bc1445f3267169', 'api': '5d511db734ae7853'}
    """
    stdout = _run_config(cli, files, project=project, project_directory=project_directory,
                         options=[], args=["config", "--hash=*"], environ=environ,
                         env_file=env_file, timeout_s=timeout_s, runner=runner,
                         scrubber=scrubber)
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{16,}", parts[1]):
            out[parts[0]] = parts[1]
    return out
