"""Precision and recall of the source audit against a tree with known answers.

``expected.json`` lists every true finding as ``{"file", "line", "kind"}``; a reported
finding is a true positive when all three match.

>>> from revivadiag.analyze.source_audit import SourceFinding
>>> got = [SourceFinding("a.ts", 1, 1, "backend_url", "", "", "client", "")]
>>> score(got, [{"file": "a.ts", "line": 1, "kind": "backend_url"},
...             {"file": "a.ts", "line": 2, "kind": "backend_port"}]).recall
0.5
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from revivadiag.analyze.source_audit import SourceFinding, scan_tree
from revivadiag.errors import ParameterError

Key = tuple[str, int, str]


@dataclass(frozen=True)
class Score:
    """True/false positives, false negatives, precision and recall."""

    true_positives: int
    false_positives: list[Key] = field(default_factory=list)
    false_negatives: list[Key] = field(default_factory=list)

    @property
    def precision(self) -> float:
        found = self.true_positives + len(self.false_positives)
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        total = self.true_positives + len(self.false_negatives)
        return self.true_positives / total if total else 1.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able figures."""
        return {
            "true_positives": self.true_positives,
            "false_positives": [list(k) for k in self.false_positives],
            "false_negatives": [list(k) for k in self.false_negatives],
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
        }


def score(found: Iterable[SourceFinding], expected: Iterable[Mapping[str, Any]]) -> Score:
    """Compare reported findings with the known answers on (file, line, kind)."""
    got = {(f.file, f.line, f.kind) for f in found}
    want = {(str(e["file"]), int(e["line"]), str(e["kind"])) for e in expected}
    return Score(len(got & want), sorted(got - want), sorted(want - got))


def load_expected(path: str | Path) -> list[dict[str, Any]]:
    """The ``findings`` list of an expected.json; ParameterError when malformed."""
    try:
        data = json.loads(Path(path).read_text())
        items = data["findings"]
        if not isinstance(items, list):
            raise TypeError("findings is not a list")
        return [dict(i) for i in items]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ParameterError("--evaluate", str(path), f"expected a JSON file with a findings list "
                             f"of {{file, line, kind}} ({exc})") from exc


def evaluate(root: str | Path, expected_path: str | Path | None = None) -> Score:
    """Scan ``root`` and score it against ``expected_path`` (default ROOT/expected.json)."""
    expected = load_expected(expected_path or Path(root) / "expected.json")
    return score(scan_tree(root), expected)
