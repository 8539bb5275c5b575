"""Precision and recall of the source audit against trees with known answers.

``expected.json`` is ``{"findings": [{"file": ..., "line": ..., "kind": ...}, ...]}``: every
true finding of the tree. A reported finding is a true positive when file, line and kind
match (file and line alone when the expected entries give no kind). A directory without an
``expected.json`` whose subdirectories have one is a set of trees: each is scored, then all
together.

>>> from revivadiag.analyze.source_audit import SourceFinding
>>> got = [SourceFinding("a.ts", 1, 1, "backend_url", "", "", "client", "")]
>>> score(got, [{"file": "a.ts", "line": 1, "kind": "backend_url"},
...             {"file": "a.ts", "line": 2, "kind": "backend_port"}]).recall
0.5
>>> s = score(got, [{"file": "a.ts", "line": 1, "kind": "websocket_url"}])
>>> (s.precision, s.location_precision, s.by_location)
(0.0, 1.0, (1, 0, 0))
>>> try:
...     validate_entries([{"file": "a.ts"}], "e.json")
... except ParameterError as exc:
...     print(exc.allowed.split("(")[-1])
entry 1: 'line' missing)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revivadiag.analyze.source_audit import SourceFinding, scan_tree
from revivadiag.analyze.source_stack import Stack
from revivadiag.errors import ParameterError

Key = tuple[Any, ...]
_FORMAT = "expected a JSON file with a findings list of {file, line[, kind]}"


@dataclass(frozen=True)
class Score:
    """True/false positives, false negatives, precision and recall."""

    true_positives: int
    false_positives: list[Key] = field(default_factory=list)
    false_negatives: list[Key] = field(default_factory=list)
    #: the same counts on (file, line) alone: (true positives, false positives, misses)
    by_location: tuple[int, int, int] = (0, 0, 0)

    @property
    def precision(self) -> float:
        found = self.true_positives + len(self.false_positives)
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        total = self.true_positives + len(self.false_negatives)
        return self.true_positives / total if total else 1.0

    @property
    def location_precision(self) -> float:
        """Precision when a finding only has to be on a labelled line (any kind)."""
        tp, fp, _ = self.by_location
        return tp / (tp + fp) if tp + fp else 1.0

    @property
    def location_recall(self) -> float:
        """Recall when a labelled line only has to hold some finding (any kind)."""
        tp, _, fn = self.by_location
        return tp / (tp + fn) if tp + fn else 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able figures."""
        return {
            "true_positives": self.true_positives,
            "false_positives": [list(k) for k in self.false_positives],
            "false_negatives": [list(k) for k in self.false_negatives],
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "location_precision": round(self.location_precision, 4),
            "location_recall": round(self.location_recall, 4),
        }


def score(found: Iterable[SourceFinding], expected: Iterable[Mapping[str, Any]]) -> Score:
    """Compare reported findings with the known answers on (file, line[, kind])."""
    want_items = list(expected)
    with_kind = all("kind" in e for e in want_items)
    found = list(found)
    got = {(f.file, f.line, f.kind) if with_kind else (f.file, f.line) for f in found}
    want = {(str(e["file"]), int(e["line"]), str(e["kind"])) if with_kind
            else (str(e["file"]), int(e["line"])) for e in want_items}
    got_at = {(f.file, f.line) for f in found}
    want_at = {(str(e["file"]), int(e["line"])) for e in want_items}
    located = (len(got_at & want_at), len(got_at - want_at), len(want_at - got_at))
    return Score(len(got & want), sorted(got - want), sorted(want - got), located)


def combine(scores: Iterable[tuple[str, Score]]) -> Score:
    """One score over several trees (keys prefixed with the tree's name)."""
    tp, fp, fn = 0, [], []
    located = [0, 0, 0]
    for name, s in scores:
        located = [a + b for a, b in zip(located, s.by_location, strict=True)]
        tp += s.true_positives
        fp += [(f"{name}/{k[0]}", *k[1:]) for k in s.false_positives]
        fn += [(f"{name}/{k[0]}", *k[1:]) for k in s.false_negatives]
    return Score(tp, fp, fn, (located[0], located[1], located[2]))


def validate_entries(items: object, path: str | Path) -> list[dict[str, Any]]:
    """The entries, each checked: ``file`` a string, ``line`` an integer >= 1, ``kind`` a string."""
    if not isinstance(items, list):
        raise ParameterError("--evaluate", str(path), f"{_FORMAT} (findings is not a list)")
    out = []
    for n, item in enumerate(items, start=1):
        problem = ""
        if not isinstance(item, Mapping):
            problem = "not an object"
        elif not isinstance(item.get("file"), str) or not item["file"]:
            problem = "'file' missing or not a string"
        elif "line" not in item:
            problem = "'line' missing"
        elif (isinstance(item["line"], bool) or not isinstance(item["line"], int)
              or item["line"] < 1):
            problem = f"'line' is {item['line']!r}, not an integer >= 1"
        elif "kind" in item and not isinstance(item["kind"], str):
            problem = "'kind' is not a string"
        if problem:
            raise ParameterError("--evaluate", str(path), f"{_FORMAT} (entry {n}: {problem})")
        out.append(dict(item))  # type: ignore[arg-type]
    return out


def load_expected(path: str | Path) -> list[dict[str, Any]]:
    """The ``findings`` list of an expected.json; ParameterError when missing or malformed."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ParameterError("--evaluate", str(path), f"{_FORMAT} ({exc})") from exc
    if not isinstance(data, Mapping) or "findings" not in data:
        raise ParameterError("--evaluate", str(path), f"{_FORMAT} (no findings key)")
    return validate_entries(data["findings"], path)


def trees(root: str | Path) -> list[Path]:
    """``root`` when it has an expected.json, else its subdirectories that have one."""
    base = Path(root)
    if (base / "expected.json").is_file() or not base.is_dir():
        return [base]
    found = sorted(p.parent for p in base.glob("*/expected.json"))
    return found or [base]


def evaluate(root: str | Path, expected_path: str | Path | None = None,
             stack: Stack | None = None) -> Score:
    """Scan ``root`` and score it against ``expected_path`` (default ROOT/expected.json)."""
    expected = load_expected(expected_path or Path(root) / "expected.json")
    return score(scan_tree(root, stack), expected)


def evaluate_all(root: str | Path) -> list[tuple[str, Score]]:
    """(tree name, score) of every tree under ``root`` (see :func:`trees`)."""
    return [(t.name, evaluate(t)) for t in trees(root)]
