"""Output paths checked before any work: what is accepted, what is refused, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from revivadiag.errors import OutputPathError
from revivadiag.outpaths import check_output_dir, check_output_file


def test_accepted_paths_are_not_created(tmp_path: Path) -> None:
    """A new nested directory, an existing one, a new or existing file: accepted, and the
    check leaves the folder as it was."""
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "dir").mkdir()
    for path in (tmp_path / "a" / "b", tmp_path / "dir"):
        assert check_output_dir(path) == path
    for path in (tmp_path / "new.json", tmp_path / "old.json", tmp_path / "x" / "y.xml"):
        assert check_output_file(path) == path
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dir", "old.json"]


@pytest.mark.parametrize(
    ("path", "needle"),
    [("f", "it is a file, not a directory"), ("f/sub", "f is a file, not a directory")],
)
def test_refused_directories(tmp_path: Path, path: str, needle: str) -> None:
    """A file (or a path below one) is no output directory."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match=needle):
        check_output_dir(tmp_path / path)


def test_refused_files(tmp_path: Path) -> None:
    """A directory, a path below a file, and a place nothing can be created in."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputPathError, match="it is a directory, not a file"):
        check_output_file(tmp_path)
    with pytest.raises(OutputPathError, match="is a file, not a directory"):
        check_output_file(tmp_path / "f" / "out.json")
    with pytest.raises(OutputPathError, match="cannot create files in /proc"):
        check_output_file(Path("/proc/revivadiag-test.json"))
