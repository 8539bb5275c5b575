"""The steps of ``runbooks/diagnose.ipynb``: one function per cell, so the cells stay thin.

>>> from revivadiag.runbook import diagnose as steps
>>> params = steps.resolve(project="shop")               # doctest: +SKIP
>>> snap = steps.take_snapshot(params)                         # doctest: +SKIP
>>> steps.roles_table(snap)                                    # doctest: +SKIP
>>> diag = steps.run_diagnosis(snap, params)                   # doctest: +SKIP
>>> steps.topology(snap, params)                               # doctest: +SKIP
>>> steps.record(diag, params)                                 # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from revivadiag.analyze.policy import Policy, load_policy
from revivadiag.collect.compose import compose_answer, declared_project, model_from_dict
from revivadiag.errors import ComposeFileError
from revivadiag.render import tables
from revivadiag.runbook.params import DiagnoseParams
from revivadiag.runbook.record import glue_diagnosis

if TYPE_CHECKING:
    import networkx as nx

    from revivadiag.analyze.diagnosis import Diagnosis
    from revivadiag.collect.snapshot import Snapshot

SYSTEM_LABEL_PREFIXES = ("com.docker.compose.", "io.revivadiag.", "desktop.docker.io")


def resolve(**values: Any) -> DiagnoseParams:
    """The parameters cell's variables, checked (``project`` may come from the environment)."""
    return DiagnoseParams.resolve(**values)


def take_snapshot(params: DiagnoseParams) -> Snapshot:
    """Every frame of the project (see :func:`revivadiag.snapshot`), its roles decided with
    the run's policy and compose file (``x-revivadiag`` declarations)."""
    from revivadiag.collect.pipeline import snapshot

    def compose(view: Any) -> Mapping[str, Any] | None:
        return compose_data(view, params)

    engines = params.engines
    try:
        return snapshot(
            project=params.project_or_none,
            docker_host=None if engines else params.docker_host_or_none,
            samples=params.samples,
            policy=policy_of(params),
            compose=compose,
            engines=engines,
        )
    finally:
        _SNAPSHOT_TAKEN.set()


_SNAPSHOT_TAKEN = threading.Event()


def after_snapshot(timeout_s: float = 600.0) -> None:
    """Return once this process has taken its snapshot (:func:`take_snapshot`, which failed
    or not), or after ``timeout_s``. The runbook's kernel preloads in a background thread
    what the snapshot needs first, then waits here before it loads what only the later
    cells need (analysis, matplotlib, networkx): that loading then runs while the analysis
    waits on its live requests, not during the snapshot's measurements."""
    _SNAPSHOT_TAKEN.wait(timeout_s)


def compose_data(snap: Any, params: DiagnoseParams) -> Mapping[str, Any] | None:
    """The run's compose project (``compose_file``, else the files the containers' labels
    name) as one normalised dict, or None when there is none (see
    :func:`~revivadiag.collect.compose.compose_answer`)."""
    return compose_answer(snap, [Path(p) for p in params.compose_files])


def roles_frame(snap: Any) -> pd.DataFrame:
    """One row per service: its role, ports, how it was decided, and a flag when ambiguous
    or undecided (what the report shows).

    >>> from revivadiag.collect.roles import Roles
    >>> snap = type("S", (), {"roles": Roles.from_rows([{"service": "api", "role": "backend",
    ...     "port": 8000, "ports": [8000], "decided_by": "proxy", "confidence": "high",
    ...     "evidence": "edge forwards /api/ to api:8000"}]).frame})()
    >>> roles_frame(snap).iloc[0].to_dict()["ports"]
    '8000'
    """
    from revivadiag.collect.roles import Roles

    frame = Roles.from_snapshot(snap).frame
    rows = []
    for r in frame.to_dict("records"):
        flag = (f"AMBIGUOUS (also: {r['alternatives']})" if bool(r["ambiguous"]) else
                "UNDECIDED" if r["decided_by"] == "none" else "")
        rows.append({"service": r["service"], "role": r["role"],
                     "ports": ", ".join(str(p) for p in r["ports"]),
                     "software": r["software"] or "", "decided by": r["decided_by"],
                     "confidence": r["confidence"], "flag": flag, "evidence": r["evidence"]})
    return pd.DataFrame(rows, columns=["service", "role", "ports", "software", "decided by",
                                       "confidence", "flag", "evidence"])


def roles_table(snap: Any) -> Any:
    """The roles as an escaped table (ambiguous or undecided ones flagged)."""
    return tables.plain_table(roles_frame(snap))


def overview_frame(snap: Any) -> pd.DataFrame:
    """One row per container: service, state, health, networks and published ports.

    A container with no network or no published port gets an empty string there (a project
    that publishes nothing has an empty ``ports`` frame).
    """
    nets: dict[str, set[str]] = {}
    for row in snap.endpoints[["container", "network"]].dropna().itertuples(index=False):
        nets.setdefault(str(row.container), set()).add(str(row.network))
    published: dict[str, set[str]] = {}
    for r in snap.ports.to_dict("records"):
        if pd.isna(r["host_port"]) or pd.isna(r["container_port"]):
            continue
        ip = "" if pd.isna(r["host_ip"]) else str(r["host_ip"])
        spec = f"{ip}:{int(r['host_port'])}->{int(r['container_port'])}"
        published.setdefault(str(r["container"]), set()).add(spec)
    frame = snap.containers[["name", "service", "state", "health"]].copy()
    names = [str(n) for n in frame["name"]]
    frame["networks"] = pd.Series(
        [", ".join(sorted(nets.get(n, ()))) for n in names], index=frame.index, dtype="string"
    )
    frame["published"] = pd.Series(
        [", ".join(sorted(published.get(n, ()))) for n in names], index=frame.index,
        dtype="string",
    )
    frame["labels"] = snap.containers["labels"].map(user_labels)
    return frame.sort_values(["service", "name"]).reset_index(drop=True)


def user_labels(text: str) -> str:
    """The labels a user set (not Compose's or the lab's own), as ``key=value; ...``.

    >>> user_labels('{"com.docker.compose.service": "web", "team": "<ops>"}')
    'team=<ops>'
    """
    try:
        labels = json.loads(text or "{}")
    except json.JSONDecodeError:
        return ""
    own = [k for k in sorted(labels) if not str(k).startswith(SYSTEM_LABEL_PREFIXES)]
    return "; ".join(f"{k}={labels[k]}" for k in own)


def overview(snap: Any) -> Any:
    """The container overview as an escaped table."""
    return tables.plain_table(overview_frame(snap))


def run_diagnosis(snap: Snapshot, params: DiagnoseParams) -> Diagnosis:
    """Policy, KPIs, config and source audit of the snapshot."""
    from revivadiag.analyze.diagnosis import diagnose

    return diagnose(
        snap,
        environment=params.environment,
        policy=params.policy_file or None,
        live=params.live,
        source_path=params.source_path or None,
        docker_host=params.first_engine,
        compose=compose_data(snap, params),
    )


def verdict_text(diagnosis: Any) -> str:
    """``FAILED: 3 error, 2 warning, 1 info findings`` (or PASSED)."""
    counts = diagnosis.counts()
    word = "FAILED" if counts.get("error", 0) else "PASSED"
    detail = ", ".join(f"{n} {sev}" for sev, n in counts.items())
    return f"{word}: {detail} findings for project {diagnosis.project} ({diagnosis.environment})"


def verdict(diagnosis: Any) -> Any:
    """The verdict line and the diagnosis notes as escaped HTML."""
    from IPython.display import HTML

    colour = "#b71c1c" if diagnosis.counts().get("error", 0) else "#1b5e20"
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in diagnosis.notes)
    text = html.escape(verdict_text(diagnosis))
    body = f'<p style="font-size:1.2em;color:{colour}"><b>{text}</b></p>'
    return HTML(body + (f"<p>Notes:</p><ul>{notes}</ul>" if notes else ""))  # type: ignore[no-untyped-call]


def policy_of(params: DiagnoseParams) -> Policy:
    """The access policy the run uses."""
    return load_policy(params.policy_file or None)


# ---------------------------------------------------------------- topology


def declared_graph(
    snap: Any, params: DiagnoseParams, policy: Policy | None = None
) -> tuple[nx.MultiDiGraph | None, str]:
    """(the declared topology, "") or (None, why not) when the files the containers' labels
    name cannot be read. Files given as ``compose_file`` must be readable: their
    :class:`~revivadiag.errors.ComposeFileError` is raised, never passed over.

    See :func:`revivadiag.collect.compose.declared_project` for how the files are read.
    """
    from revivadiag.render.topology import graph_from_model

    given = [Path(p) for p in params.compose_files]
    try:
        doc = declared_project(snap, given or None)
    except ComposeFileError as exc:
        if given:
            raise
        return None, str(exc)
    if doc is None:
        return None, "no compose file given and none named by the containers' labels"
    return graph_from_model(model_from_dict(doc.data, origin=doc.origin, reader=doc.reader),
                            policy=policy), ""


def topology_figure(snap: Any, params: DiagnoseParams) -> Any:
    """Declared (compose file) and live (snapshot) topology side by side, as a Figure."""
    from revivadiag.render import draw
    from revivadiag.render.topology import graph_from_snapshot

    policy = policy_of(params)
    live = graph_from_snapshot(snap, policy=policy)
    declared, why = declared_graph(snap, params, policy)
    if declared is None:
        return draw.draw_topology(live, title=f"live (snapshot); declared unavailable: {why}")
    return draw.draw_side_by_side(declared, live)


def topology(snap: Any, params: DiagnoseParams) -> Any:
    """:func:`topology_figure` as an image for the notebook."""
    from revivadiag.render import draw

    return draw.show(topology_figure(snap, params))


def record(diagnosis: Any, params: DiagnoseParams) -> dict[str, Any]:
    """Record the run's key values (scrapbook) for :func:`~revivadiag.runbook.read_runs`."""
    return glue_diagnosis(diagnosis, params.as_dict())
