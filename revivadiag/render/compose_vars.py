"""Compose variables: interpolation (``${VAR:-default}`` and friends), ``.env`` files, and
inference of the values a running project was started with.

Inference matters for the declared topology: a compose file full of ``${LAB_PREFIX:?}`` is
only comparable with what runs once those values are known. :func:`infer_env` matches the
file's templates (container names, port specs, network names) against the live names and
ports and reads the variables off the matches.

>>> interpolate({"a": "${X:-1}-$Y-$$"}, {"Y": "2"}, "f")
{'a': '1-2-$'}
>>> infer_env({"services": {"db": {"container_name": "${P:?}_db"}}},
...           container_names={"db": "demo_db"})
{'P': 'demo'}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from revivadiag.errors import ComposeFileError

VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: Mapping[str, str], origin: str, *, strict: bool = True) -> Any:
    """Substitute variables in every string of a parsed compose document."""
    if isinstance(value, str):
        return interpolate_text(value, env, origin, strict=strict)
    if isinstance(value, list):
        return [interpolate(v, env, origin, strict=strict) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v, env, origin, strict=strict) for k, v in value.items()}
    return value


def interpolate_text(text: str, env: Mapping[str, str], origin: str, *, strict: bool = True) -> str:
    """One string; ComposeFileError for a missing ``${VAR:?}`` when ``strict``."""

    def sub(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        value, op, arg = env.get(name), m["op"], m["arg"] or ""
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-") and unset_or_empty:
            return arg
        if op in (":?", "?") and unset_or_empty and strict:
            raise ComposeFileError(origin, f"required variable {name} is missing: {arg or 'unset'}")
        return value or ""

    return VAR.sub(sub, text)


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
