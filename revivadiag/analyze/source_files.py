"""Walking a source tree safely: which files the source audit reads, and what it skipped.

The walk never follows a directory symlink and never opens anything but a regular file (a
FIFO named ``.env`` would block ``open()`` forever): every entry is ``lstat``-ed first, a
symlink is read only when it resolves to a regular file inside the tree, and the file is
opened with ``O_NONBLOCK`` and checked again with ``fstat`` on the open descriptor. What is
not read is recorded as a :class:`Skip` with its reason, never dropped in silence.

Lines are counted as editors count them: ``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line;
a form feed, ``\\x1c``-``\\x1e``, NEL or U+2028 do not (``str.splitlines`` would split there).

>>> split_lines("a\\r\\nb\\x0cc\\u2028d\\re\\n")
['a', 'b\\x0cc\\u2028d', 'e', '']
>>> reads("web/src/App.vue"), reads("docs/guide.md"), reads("api/node_modules/x/i.js")
(True, False, False)
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: code files whose lines may hold URLs
CODE_EXTS = frozenset({".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".mts", ".cts", ".vue",
                       ".svelte", ".astro", ".html", ".htm", ".py", ".go"})
#: configuration files read line by line
CONFIG_EXTS = frozenset({".yml", ".yaml", ".toml", ".conf", ".env", ".ini", ".cfg"})
#: file names read whatever their extension
CONFIG_NAMES = frozenset({"package.json", "Caddyfile", "Dockerfile", "Containerfile",
                          "nginx.conf", "gunicorn.conf.py"})
#: directories never entered: dependencies, build output, caches, docs, VCS
SKIP_DIRS = frozenset({
    "node_modules", "bower_components", "vendor", "third_party", ".git", ".hg", ".svn",
    "dist", "build", "out", ".next", ".nuxt", ".output", ".svelte-kit", ".astro", ".vercel",
    ".turbo", ".cache", ".parcel-cache", "coverage", "htmlcov", "target", "__pycache__",
    ".venv", "venv", "env", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache",
    "site-packages", "docs", "doc", ".idea", ".vscode", "storybook-static",
})
#: lockfiles and generated files
SKIP_NAMES = frozenset({
    "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "poetry.lock",
    "Pipfile.lock", "uv.lock", "composer.lock", "Cargo.lock", "go.sum", "Gemfile.lock",
    "pdm.lock", "npm-shrinkwrap.json",
})
_SKIP_SUFFIXES = (".min.js", ".min.mjs", ".bundle.js", ".chunk.js", ".map", ".d.ts")
MAX_FILE_BYTES = 2_000_000
MAX_FILES = 50_000

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    r"""``text`` split at ``\n``, ``\r\n`` and ``\r`` only (a trailing break ends in ``''``)."""
    return _LINE_BREAK.split(text)


def is_env_name(name: str) -> bool:
    """``.env``, ``.env.local``, ``prod.env``."""
    return name == ".env" or name.startswith(".env.") or name.endswith(".env")


def is_dockerfile(name: str) -> bool:
    """``Dockerfile``, ``Dockerfile.dev``, ``api.Dockerfile``, ``Containerfile``."""
    low = name.lower()
    return low.startswith(("dockerfile", "containerfile")) or low.endswith(".dockerfile")


def reads(path: str) -> bool:
    """Whether the audit reads the file at relative ``path`` (by its name and directories)."""
    parts = path.split("/")
    name = parts[-1]
    if len(parts) > 1 and not SKIP_DIRS.isdisjoint(parts[:-1]):
        return False
    if name in SKIP_NAMES or name.endswith(_SKIP_SUFFIXES):
        return False
    if name in CONFIG_NAMES or is_env_name(name) or is_dockerfile(name):
        return True
    low = name.lower()
    if low.endswith((".conf.template", ".conf.tpl", ".caddyfile")):
        return True
    if is_json_config(path):
        return True
    dot = low.rfind(".")
    return dot > 0 and (low[dot:] in CODE_EXTS or low[dot:] in CONFIG_EXTS)


_JSON_CONFIG_NAMES = frozenset({"config.json", "proxy.conf.json", "proxy.config.json",
                                "appsettings.json", "settings.json", "default.json",
                                "development.json", "production.json", "local.json",
                                "database.json", "db.json", "ormconfig.json", "servers.json"})


def is_json_config(path: str) -> bool:
    """JSON files that hold app configuration: ``config/*.json``, ``proxy.conf.json``, ...

    >>> is_json_config("config/config.json"), is_json_config("tsconfig.json")
    (True, False)
    """
    parts = path.split("/")
    name = parts[-1].lower()
    if not name.endswith(".json") or name.startswith(("tsconfig", "jsconfig", ".")):
        return False
    return (name in _JSON_CONFIG_NAMES or name.endswith((".config.json", ".conf.json"))
            or (len(parts) > 1 and parts[-2].lower() in ("config", "configs", "settings")))


@dataclass(frozen=True)
class Skip:
    """A file or directory the audit did not read, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Limits:
    """How much the audit reads: bytes per file and files per tree."""

    max_file_bytes: int = MAX_FILE_BYTES
    max_files: int = MAX_FILES

    @property
    def max_entries(self) -> int:
        """Directory entries looked at (files of any type and directories): the walk's bound."""
        return 20 * self.max_files


@dataclass
class Walk:
    """The files to read (relative posix path -> absolute path) and what was skipped."""

    files: dict[str, Path] = field(default_factory=dict)
    skips: list[Skip] = field(default_factory=list)
    limit_hit: bool = False


def _inside(root: str, target: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def walk(root: Path, limits: Limits = Limits()) -> Walk:
    """Every file under ``root`` the audit reads, in sorted order, bounded by ``limits``.

    Directory symlinks are not followed; a file symlink is kept only when it resolves to a
    regular file inside ``root``; FIFOs, sockets and devices are skipped unopened.
    """
    out = Walk()
    real_root = os.path.realpath(root)
    stack, seen = [""], 0
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.skips.append(Skip(rel_dir or ".", f"unreadable directory ({exc.strerror})"))
            continue
        subdirs = []
        seen += len(entries)
        if seen > limits.max_entries:
            out.skips.append(Skip(rel_dir or ".", f"entry limit reached ({limits.max_entries} "
                                                  "directory entries); the rest of the tree "
                                                  "not walked"))
            out.limit_hit = True
            return out
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as exc:
                out.skips.append(Skip(rel, f"unreadable ({exc.strerror})"))
                continue
            entry_mode, target = st.st_mode, entry.path
            if stat.S_ISDIR(st.st_mode):
                if entry.name not in SKIP_DIRS:
                    subdirs.append(rel)
                continue
            if not reads(rel):
                continue
            if entry.name in SKIP_NAMES:
                continue
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(entry.path)
                if not _inside(real_root, target):
                    out.skips.append(Skip(rel, "symlink pointing outside the tree"))
                    continue
                try:
                    st = os.stat(target)
                except OSError as exc:
                    out.skips.append(Skip(rel, f"broken symlink ({exc.strerror})"))
                    continue
            if not stat.S_ISREG(st.st_mode):
                out.skips.append(Skip(rel, "not a regular file"))
                continue
            if len(out.files) >= limits.max_files:
                out.skips.append(Skip(rel, f"file limit reached ({limits.max_files} files read); "
                                           "this file and the rest of the tree not read"))
                out.limit_hit = True
                return out
            out.files[rel] = Path(target) if stat.S_ISLNK(entry_mode) else Path(entry.path)
        stack.extend(reversed(subdirs))
    return out


def read_file(path: Path, rel: str, limits: Limits = Limits()) -> tuple[str | None, Skip | None]:
    """(text, None), or (None, the reason it was not read).

    Opened with ``O_NONBLOCK`` and ``O_NOFOLLOW`` (the walk resolved the symlinks it accepts)
    and checked with ``fstat``: a FIFO or device that replaced the file after the walk is
    refused, not waited on.
    """
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
             | getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        return None, Skip(rel, f"unreadable ({exc.strerror})")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, Skip(rel, "not a regular file")
        if st.st_size > limits.max_file_bytes:
            return None, Skip(rel, f"too large ({st.st_size} bytes > {limits.max_file_bytes})")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limits.max_file_bytes + 1)
    except OSError as exc:
        return None, Skip(rel, f"unreadable ({exc.strerror})")
    finally:
        os.close(fd)
    if len(data) > limits.max_file_bytes:
        return None, Skip(rel, f"too large (> {limits.max_file_bytes} bytes)")
    return decode(data, rel)


def decode(data: bytes, rel: str) -> tuple[str | None, Skip | None]:
    """UTF-8 (with or without BOM) or BOM-marked UTF-16 text; binary and other encodings skipped.

    >>> decode(b"a\\x00b", "x.js")[1].reason
    'binary (NUL bytes)'
    >>> decode("é".encode("latin-1"), "x.js")[1].reason
    'bad encoding (not UTF-8)'
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError:
            return None, Skip(rel, "bad encoding (broken UTF-16)")
    if b"\x00" in data[:8192]:
        return None, Skip(rel, "binary (NUL bytes)")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        return None, Skip(rel, "bad encoding (not UTF-8)")


def read_all(root: Path, walked: Walk, limits: Limits = Limits()) -> Iterator[tuple[str, str]]:
    """(relative path, text) of every walked file that could be read; skips go to ``walked``."""
    for rel, path in walked.files.items():
        text, skip = read_file(path, rel, limits)
        if skip is not None:
            walked.skips.append(skip)
        elif text is not None:
            yield rel, text
