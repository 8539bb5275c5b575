"""The :class:`Snapshot`: every frame of one look at a project, its metadata, and its files.

``write(dir)`` puts one file per frame (Parquet or CSV), ``snapshot.json`` (the
:meth:`Snapshot.to_json` object: frame name -> list of records) and ``meta.json`` in ``dir``;
:meth:`Snapshot.load` reads such a directory back into equal frames. List columns
(``aliases``, ``answers``, ...) are JSON-encoded in Parquet and CSV files, and decoded again
on load.

>>> snap = Snapshot.empty(project="demo")
>>> sorted(snap.to_json()) == sorted(FRAME_NAMES)
True
>>> snap.containers.empty
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from revivadiag.errors import ParameterError
from revivadiag.schemas import BOOL, LIST, empty_frame, schema, to_frame

#: the frames of a snapshot, in the order they are collected
FRAME_NAMES = ("containers", "networks", "endpoints", "ports", "env", "roles",
               "dns", "reachability", "latency", "health",
               "engines", "swarm_nodes", "swarm_services", "swarm_tasks", "swarm_lb",
               "connections")
#: the Swarm frames (empty when no engine is a Swarm manager)
SWARM_FRAMES = ("swarm_nodes", "swarm_services", "swarm_tasks", "swarm_lb")
#: frames an older snapshot directory may lack (read back empty)
OPTIONAL_FRAMES = ("roles", "engines", *SWARM_FRAMES, "connections")
FORMATS = ("parquet", "csv")
META_FILE = "meta.json"
JSON_FILE = "snapshot.json"


@dataclass
class SnapshotMeta:
    """Where and how a snapshot was taken."""

    project: str
    taken_at: str = ""
    engine_address: str = ""
    engine_version: str = ""
    api_version: str = ""
    #: the probe method asked for (auto, setns, sidecar, exec)
    method_requested: str = "auto"
    #: the probe method(s) that produced the probe rows, comma-separated
    method: str = ""
    samples: int = 0
    duration_s: dict[str, float] = field(default_factory=dict)
    api_calls: int = 0
    notes: list[str] = field(default_factory=list)
    revivadiag_version: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SnapshotMeta:
        """Inverse of ``dataclasses.asdict`` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Snapshot:
    """Every frame of one snapshot (see :mod:`revivadiag.schemas`) plus :class:`SnapshotMeta`."""

    meta: SnapshotMeta
    containers: pd.DataFrame
    networks: pd.DataFrame
    endpoints: pd.DataFrame
    ports: pd.DataFrame
    env: pd.DataFrame
    roles: pd.DataFrame
    dns: pd.DataFrame
    reachability: pd.DataFrame
    latency: pd.DataFrame
    health: pd.DataFrame
    #: one row per engine (see :mod:`revivadiag.collect.engines`)
    engines: pd.DataFrame = field(default_factory=lambda: empty_frame("engines"))
    swarm_nodes: pd.DataFrame = field(default_factory=lambda: empty_frame("swarm_nodes"))
    swarm_services: pd.DataFrame = field(default_factory=lambda: empty_frame("swarm_services"))
    swarm_tasks: pd.DataFrame = field(default_factory=lambda: empty_frame("swarm_tasks"))
    swarm_lb: pd.DataFrame = field(default_factory=lambda: empty_frame("swarm_lb"))
    #: TCP connections held in the containers (see :mod:`revivadiag.collect.sockets`)
    connections: pd.DataFrame = field(default_factory=lambda: empty_frame("connections"))

    @classmethod
    def empty(cls, project: str = "") -> Snapshot:
        """A snapshot with every frame empty (right columns and dtypes)."""
        meta = SnapshotMeta(project=project, taken_at=_now())
        return cls(meta, **{name: empty_frame(name) for name in FRAME_NAMES})

    @property
    def project(self) -> str:
        return self.meta.project

    def frames(self) -> dict[str, pd.DataFrame]:
        """frame name -> frame, in collection order."""
        return {name: getattr(self, name) for name in FRAME_NAMES}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in FRAME_NAMES:
            raise KeyError(f"no frame {name!r}; frames: {', '.join(FRAME_NAMES)}")
        frame: pd.DataFrame = getattr(self, name)
        return frame

    def __repr__(self) -> str:
        sizes = ", ".join(f"{n}={len(f)}" for n, f in self.frames().items())
        return f"Snapshot(project={self.project!r}, taken_at={self.meta.taken_at!r}, {sizes})"

    def to_json(self) -> dict[str, list[dict[str, Any]]]:
        """frame name -> list of JSON-safe records (ISO timestamps, lists kept, NA -> None)."""
        return {name: records(name, frame) for name, frame in self.frames().items()}

    def write(self, directory: str | Path, format: str = "parquet") -> list[Path]:
        """Write every frame, ``snapshot.json`` and ``meta.json`` into ``directory``."""
        if format not in FORMATS:
            raise ParameterError("format", format, f"expected one of {', '.join(FORMATS)}")
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = [_write_frame(name, frame, out, format) for name, frame in self.frames().items()]
        written.append(_write_text(out / JSON_FILE, json.dumps(self.to_json(), indent=1)))
        written.append(_write_text(out / META_FILE, json.dumps(asdict(self.meta), indent=1)))
        return written

    @classmethod
    def load(cls, directory: str | Path) -> Snapshot:
        """Read back what :meth:`write` wrote (Parquet or CSV, whichever is there)."""
        src = Path(directory)
        meta_path = src / META_FILE
        if not meta_path.is_file():
            raise ParameterError("snapshot directory", str(src), f"no {META_FILE} in it")
        meta = SnapshotMeta.from_dict(json.loads(meta_path.read_text(encoding="utf-8")))
        frames = {name: _read_frame(name, src) for name in FRAME_NAMES}
        return cls(meta, **frames)


def concat_frames(name: str, frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Frames of one schema stacked, dtypes kept (``attrs`` frames stacked too)."""
    full = [f for f in frames if len(f)]
    if not full:
        return frames[0] if frames else empty_frame(name)
    if len(full) == 1:
        return full[0]
    plain = []
    for f in full:  # pandas compares attrs on concat: frames kept there cannot be compared
        f = f.copy()
        f.attrs = {}
        plain.append(f)
    out = pd.concat(plain, ignore_index=True)
    for col, dtype in schema(name).dtypes.items():
        if str(out[col].dtype) != dtype:
            out[col] = out[col].astype(dtype)
    for key in {k for f in full for k, v in f.attrs.items() if isinstance(v, pd.DataFrame)}:
        out.attrs[key] = pd.concat([f.attrs[key] for f in full if key in f.attrs],
                                   ignore_index=True)
    return out


def records(name: str, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-safe records of one frame (columns in schema order)."""
    dtypes = schema(name).dtypes
    out: list[dict[str, Any]] = []
    for rec in frame.to_dict(orient="records"):
        out.append({str(k): _json_value(v, dtypes.get(str(k), "")) for k, v in rec.items()})
    return out


def _json_value(value: Any, dtype: str) -> Any:
    if dtype == LIST:
        if not isinstance(value, (list, tuple)):
            return []
        return [v if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _encode_lists(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col, dtype in schema(name).dtypes.items():
        if dtype == LIST:
            out[col] = out[col].map(lambda v: json.dumps(list(v))).astype("string")
    return out


def _write_frame(name: str, frame: pd.DataFrame, out: Path, fmt: str) -> Path:
    """``<name>.<fmt>``, plus ``<name>.<key>.<fmt>`` for each frame in ``frame.attrs``
    (the latency collector keeps its raw samples there)."""
    path = out / f"{name}.{fmt}"
    _write_table(_encode_lists(name, frame), path, fmt)
    for key, extra in frame.attrs.items():
        if isinstance(extra, pd.DataFrame):
            _write_table(extra, out / f"{name}.{key}.{fmt}", fmt)
    return path


def _write_table(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    plain = frame.copy()
    plain.attrs = {}
    if fmt == "parquet":
        plain.to_parquet(path, index=False)
    else:
        plain.to_csv(path, index=False)


def _read_frame(name: str, src: Path) -> pd.DataFrame:
    parquet, csv = src / f"{name}.parquet", src / f"{name}.csv"
    if parquet.is_file():
        raw, fmt = pd.read_parquet(parquet), "parquet"
    elif csv.is_file():
        raw, fmt = pd.read_csv(csv, dtype=str, keep_default_na=False), "csv"
    elif name in OPTIONAL_FRAMES:
        return empty_frame(name)
    else:
        raise ParameterError("snapshot directory", str(src), f"no {name}.parquet or {name}.csv")
    frame = to_frame(name, _decode(name, raw))
    for extra in sorted(src.glob(f"{name}.*.{fmt}")):
        key = extra.name[len(name) + 1 : -len(fmt) - 1]
        frame.attrs[key] = pd.read_parquet(extra) if fmt == "parquet" else pd.read_csv(extra)
    return frame


def _decode(name: str, raw: pd.DataFrame) -> list[dict[str, Any]]:
    dtypes = schema(name).dtypes
    rows: list[dict[str, Any]] = [{str(k): v for k, v in r.items()}
                                  for r in raw.to_dict(orient="records")]
    for rec in rows:
        for col, dtype in dtypes.items():
            value = rec.get(col)
            if dtype == LIST:
                rec[col] = json.loads(value) if isinstance(value, str) and value else []
            elif dtype == BOOL and isinstance(value, str):
                rec[col] = {"true": True, "false": False}.get(value.lower())
            elif value == "" and dtype != "string":  # an empty CSV cell of a typed column
                rec[col] = None
    return rows


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
