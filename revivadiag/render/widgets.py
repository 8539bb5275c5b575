"""ipywidgets controls for the notebooks: probe a path, start/stop a monitor, pick a scenario.

Each control is built from callables, so it does not care what is behind them: the probe
control calls :func:`revivadiag.runbook.debug.probe` by default, the start/stop control takes
any ``start()`` / ``stop()`` pair (e.g. a health monitor's), the scenario control takes the
scenario names and a ``run(name)`` (and optionally ``heal()``). A callable that raises a
:class:`~revivadiag.errors.RevivadiagError` shows its message in the control's output, never
a traceback; results are shown in the control's output area.

>>> from revivadiag.render import widgets
>>> widgets.probe_control(snap)                                     # doctest: +SKIP
>>> widgets.start_stop_control(monitor.start, monitor.stop)          # doctest: +SKIP
>>> widgets.scenario_control(["backend-stopped"], faults.break_, faults.heal)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w
from IPython.display import display

from revivadiag.errors import RevivadiagError


def _run_into(out: w.Output, call: Callable[[], Any]) -> Any:
    """Run ``call`` with its result (or its error's message) shown in ``out``."""
    out.clear_output()
    with out:
        try:
            result = call()
        except RevivadiagError as exc:
            print(f"error: {exc}")
            return None
        if result is not None:
            display(result)  # type: ignore[no-untyped-call]
        return result


def probe_control(snap: Any, probe: Callable[..., Any] | None = None, *,
                  source: str = "", target: str = "") -> w.VBox:
    """Source and target service dropdowns, a port, a **probe** button and its result.

    ``probe(snap, source, target, port)`` defaults to
    :func:`revivadiag.runbook.debug.probe`; the dropdowns start at the stack's proxy and
    backend (by role) unless ``source`` / ``target`` are given.
    """
    from revivadiag.runbook import debug, explore

    names = explore.services(snap)
    default_source, default_target = explore.default_pair(snap)
    call = probe or debug.probe
    src = w.Dropdown(options=names, value=source or default_source or None,
                     description="source")
    dst = w.Dropdown(options=names, value=target or default_target or None,
                     description="target")
    port = w.BoundedIntText(value=0, min=0, max=65535, description="port (0: its own)",
                            style={"description_width": "initial"})
    button = w.Button(description="probe", button_style="primary", icon="plug")
    out = w.Output()

    def on_click(_: Any) -> None:
        _run_into(out, lambda: call(snap, src.value, dst.value, int(port.value)))

    button.on_click(on_click)
    return w.VBox([w.HBox([src, dst]), w.HBox([port, button]), out])


def start_stop_control(start: Callable[[], Any], stop: Callable[[], Any], *,
                       label: str = "monitor") -> w.VBox:
    """**start** / **stop** buttons calling ``start()`` and ``stop()``, and a state line."""
    state = w.HTML(value=f"{label}: stopped")
    start_b = w.Button(description="start", button_style="success", icon="play")
    stop_b = w.Button(description="stop", button_style="warning", icon="stop", disabled=True)
    out = w.Output()

    def set_running(running: bool) -> None:
        start_b.disabled, stop_b.disabled = running, not running
        state.value = f"{label}: {'running' if running else 'stopped'}"

    def on_start(_: Any) -> None:
        out.clear_output()
        with out:
            try:
                start()
            except RevivadiagError as exc:
                print(f"error: {exc}")
                return
        set_running(True)

    def on_stop(_: Any) -> None:
        _run_into(out, stop)
        set_running(False)

    start_b.on_click(on_start)
    stop_b.on_click(on_stop)
    return w.VBox([w.HBox([start_b, stop_b, state]), out])


def scenario_control(scenarios: Sequence[str], run: Callable[[str], Any],
                     heal: Callable[[], Any] | None = None) -> w.VBox:
    """A dropdown over ``scenarios``, a **break** button calling ``run(name)`` and, when
    ``heal`` is given, a **heal** button; what they return is shown below."""
    pick = w.Dropdown(options=list(scenarios), description="scenario")
    run_b = w.Button(description="break", button_style="danger", icon="bolt")
    out = w.Output()
    run_b.on_click(lambda _: _run_into(out, lambda: run(str(pick.value))))
    buttons: list[w.Widget] = [pick, run_b]
    if heal is not None:
        heal_b = w.Button(description="heal", button_style="success", icon="medkit")
        heal_b.on_click(lambda _: _run_into(out, heal))
        buttons.append(heal_b)
    return w.VBox([w.HBox(buttons), out])
