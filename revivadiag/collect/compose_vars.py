"""Compose files as written: YAML reading, variables (``${VAR:-default}`` and friends),
``.env`` files, merging, and inference of the values a running project was started with.

:mod:`revivadiag.collect.compose` lets the user's own Compose CLI normalise a project; these
functions serve it (reading each file first, so that a missing or malformed file is named the
same way on every path; finding the variables a file requires) and are the built-in reader
used where no Compose CLI is installed.

Inference matters for the declared topology: a compose file full of ``${LAB_PREFIX:?}`` is
only comparable with what runs once those values are known. :func:`infer_env` matches the
file's templates (container names, port specs, network names) against the live names and
ports and reads the variables off the matches.

>>> interpolate({"a": "${X:-1}-$Y-$$"}, {"Y": "2"}, "f")
{'a': '1-2-$'}
>>> infer_env({"services": {"db": {"container_name": "${P:?}_db"}}},
...           container_names={"db": "demo_db"})
{'P': 'demo'}
>>> sorted(required_variables({"a": ["${A:?}", "${B:-x}", "${C?no}"]}))
['A', 'C']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from revivadiag import yamlio
from revivadiag.errors import ComposeFileError

VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)
#: Keys whose lists add up when files are merged (Compose's merge rules).
_APPENDED = frozenset({"ports", "expose", "external_links", "dns", "dns_search", "tmpfs",
                       "cap_add", "cap_drop", "devices", "security_opt"})
#: Keys given as ``KEY=value`` lists or mappings; merged as mappings.
_KEYED = frozenset({"environment", "labels", "extra_hosts", "sysctls", "annotations"})


# ---------------------------------------------------------------- YAML with Compose's tags


@dataclass(frozen=True)
class Reset:
    """``!reset``: the merged value is removed (Compose spec, merge of several files)."""


@dataclass(frozen=True)
class Override:
    """``!override VALUE``: the value replaces the earlier one instead of merging with it."""

    value: Any


class _ComposeLoader(yamlio.SafeLoader):  # type: ignore[misc,valid-type]
    """PyYAML's safe loader plus Compose's ``!reset`` and ``!override`` tags."""


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> Reset:
    return Reset()


def _override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    if isinstance(node, yaml.MappingNode):
        return Override(loader.construct_mapping(node, deep=True))
    if isinstance(node, yaml.SequenceNode):
        return Override(loader.construct_sequence(node, deep=True))
    return Override(loader.construct_scalar(node))  # type: ignore[arg-type]


_ComposeLoader.add_constructor("!reset", _reset)
_ComposeLoader.add_constructor("!override", _override)


def read_yaml(path: Path) -> dict[str, Any]:
    """One compose file as a mapping; ComposeFileError naming the file for a missing,
    unreadable, empty or malformed one."""
    if not path.exists():
        raise ComposeFileError(str(path), "no such file")
    if not path.is_file():
        raise ComposeFileError(str(path), "not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ComposeFileError(str(path), f"cannot read: {why}") from exc
    try:
        data = yaml.load(text, Loader=_ComposeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ComposeFileError(str(path), f"{where}not valid YAML ({problem})") from exc
    if data is None:
        raise ComposeFileError(str(path), "the file is empty")
    if not isinstance(data, dict):
        raise ComposeFileError(
            str(path), f"expected a mapping at the top level, got {type(data).__name__}"
        )
    return data


def read_files(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every file read (and checked) in order; ComposeFileError for the first bad one."""
    if not paths:
        raise ComposeFileError("<none>", "no compose file given")
    return [read_yaml(p) for p in paths]


# ---------------------------------------------------------------- merging


def keyed(value: Any) -> Any:
    """``["A=1", "B"]`` -> ``{"A": "1", "B": None}``; mappings unchanged.

    >>> keyed(["A=1", "B"]), keyed({"A": 1})
    ({'A': '1', 'B': None}, {'A': 1})
    """
    if not isinstance(value, list):
        return value
    out: dict[str, Any] = {}
    for item in value:
        key, sep, val = str(item).partition("=")
        out[key] = val if sep else None
    return out


def merge(base: Mapping[str, Any], override: Mapping[str, Any], key: str = "") -> dict[str, Any]:
    """Compose's merge of two files: mappings merge deeply, ``ports``-like lists add up,
    ``environment``/``labels`` merge by key, other values are replaced; ``!reset`` removes a
    value and ``!override`` replaces it whole.

    >>> merge({"s": {"ports": ["1:1"], "labels": ["a=1"]}},
    ...       {"s": {"ports": ["2:2"], "labels": {"b": "2"}}})
    {'s': {'ports': ['1:1', '2:2'], 'labels': {'a': '1', 'b': '2'}}}
    """
    out = dict(base)
    for k, value in override.items():
        if isinstance(value, Reset):
            out.pop(k, None)
            continue
        if isinstance(value, Override):
            out[k] = value.value
            continue
        old = out.get(k)
        if k in _KEYED:
            old, value = keyed(old), keyed(value)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[k] = merge(old, value, k)
        elif k in _APPENDED and isinstance(old, list) and isinstance(value, list):
            out[k] = old + [v for v in value if v not in old]
        else:
            out[k] = value
    return out


def strip_tags(value: Any) -> Any:
    """The document with ``!reset``/``!override`` markers resolved (for a single file)."""
    if isinstance(value, Override):
        return strip_tags(value.value)
    if isinstance(value, dict):
        return {k: strip_tags(v) for k, v in value.items() if not isinstance(v, Reset)}
    if isinstance(value, list):
        return [strip_tags(v) for v in value if not isinstance(v, Reset)]
    return value


def merge_files(docs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several files' mappings merged in order."""
    data: dict[str, Any] = {}
    for doc in docs:
        data = merge(data, doc)
    out: dict[str, Any] = strip_tags(data)
    return out


# ---------------------------------------------------------------- variables


def interpolate(value: Any, env: Mapping[str, str], origin: str) -> Any:
    """Substitute variables in every string of a parsed compose document."""
    if isinstance(value, str):
        return interpolate_text(value, env, origin)
    if isinstance(value, list):
        return [interpolate(v, env, origin) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env, origin) for k, v in value.items()}
    if isinstance(value, Override):
        return Override(interpolate(value.value, env, origin))
    return value


def interpolate_text(text: str, env: Mapping[str, str], origin: str) -> str:
    """One string; ComposeFileError for a missing ``${VAR:?}``."""

    def sub(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        value, op, arg = env.get(name), m["op"], m["arg"] or ""
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and unset_or_empty:
            return arg
        if op in (":?", "?") and unset_or_empty:
            raise ComposeFileError(origin, f"required variable {name} is missing: {arg or 'unset'}")
        return value or ""

    return VAR.sub(sub, text)


def required_variables(value: Any) -> set[str]:
    """Names used as ``${NAME:?}`` or ``${NAME?}`` anywhere in a document."""
    out: set[str] = set()
    if isinstance(value, str):
        out.update(m["braced"] for m in VAR.finditer(value) if (m["op"] or "").endswith("?"))
    elif isinstance(value, list):
        for v in value:
            out |= required_variables(v)
    elif isinstance(value, dict):
        for v in value.values():
            out |= required_variables(v)
    elif isinstance(value, Override):
        out |= required_variables(value.value)
    return out


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file (quotes stripped); {} when there is none."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


# ---------------------------------------------------------------- inference


def template_regex(template: str) -> re.Pattern[str] | None:
    """A regex matching what ``template`` expands to, one named group per variable.

    None when the template has no variable (nothing to learn from it).

    >>> template_regex("${P}_x_$P").match("ab_x_ab").groupdict()
    {'P': 'ab'}
    """
    parts: list[str] = []
    seen: set[str] = set()
    last = 0
    for m in VAR.finditer(template):
        parts.append(re.escape(template[last : m.start()]))
        last = m.end()
        if m["escaped"]:
            parts.append(re.escape("$"))
            continue
        name = m["braced"] or m["named"]
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
    if not seen:
        return None
    parts.append(re.escape(template[last:]))
    return re.compile("^" + "".join(parts) + "$")


def learn(template: Any, candidates: Iterable[str], into: dict[str, str]) -> None:
    """Add the variables of ``template`` when exactly one candidate matches it."""
    if not isinstance(template, str):
        return
    rx = template_regex(template)
    if rx is None:
        return
    found = [m.groupdict() for c in candidates if (m := rx.match(c))]
    unique = [dict(t) for t in {tuple(sorted(f.items())) for f in found}]
    if len(unique) == 1:
        for key, value in unique[0].items():
            into.setdefault(key, value)


def infer_env(
    data: Mapping[str, Any],
    *,
    container_names: Mapping[str, str] | None = None,
    ports: Iterable[tuple[str, int, str, int]] = (),
    networks: Iterable[str] = (),
) -> dict[str, str]:
    """Variable values read off live facts: service -> container name, published ports
    ``(service, container_port, host_ip, host_port)`` and network names."""
    env: dict[str, str] = {}
    names = dict(container_names or {})
    published: dict[str, list[str]] = {}
    for service, cport, host_ip, host_port in ports:
        forms = [
            f"{host_ip}:{host_port}:{cport}",
            f"{host_port}:{cport}",
            f"{host_ip}:{host_port}:{cport}/tcp",
            f"{host_port}:{cport}/tcp",
        ]
        published.setdefault(service, []).extend(forms)
    services = data.get("services") if isinstance(data.get("services"), Mapping) else {}
    for service, spec in (services or {}).items():
        if not isinstance(spec, Mapping):
            continue
        if service in names:
            learn(spec.get("container_name"), [names[service]], env)
        for item in spec.get("ports") or []:
            learn(item, published.get(str(service), []), env)
    nets = data.get("networks") if isinstance(data.get("networks"), Mapping) else {}
    live_networks = list(networks)
    for spec in (nets or {}).values():
        if isinstance(spec, Mapping):
            learn(spec.get("name"), live_networks, env)
    return env
