"""What every step kind shares: its spec, typed access to its parameters, and defaults.

A parameter that is missing or of the wrong type is a :class:`~revivadiag.errors.PlanError`
naming the step, raised when the step is built (before anything runs).

>>> from revivadiag.migrate.model import StepSpec
>>> step = BaseStep(StepSpec("x", "verify", {"n": 3}))
>>> step.param("n", int), step.param("m", str, default="d")
(3, 'd')
>>> step.param("n", str)
Traceback (most recent call last):
...
revivadiag.errors.PlanError: plan step x: parameter 'n' must be a str, not int
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from revivadiag.errors import PlanError
from revivadiag.migrate.model import Applied, Context, StepSpec

_MISSING = object()
#: a kind's parameters: name -> (type, required)
ParamSpec = Mapping[str, tuple[type | tuple[type, ...], bool]]


class BaseStep:
    """Defaults: nothing to capture, nothing to undo, never drifts."""

    kind: ClassVar[str] = ""
    #: parameters the kind reads: name -> (type, required)
    PARAMS: ClassVar[ParamSpec] = {}

    def __init__(self, spec: StepSpec) -> None:
        self.spec = spec
        unknown = sorted(set(spec.params) - set(self.PARAMS)) if self.PARAMS else []
        if unknown and type(self) is not BaseStep:
            raise PlanError(f"step {spec.id}", f"{spec.kind} takes no parameter "
                            + ", ".join(repr(u) for u in unknown)
                            + f" (it takes {', '.join(self.PARAMS)})")
        for name, (kind, required) in self.PARAMS.items():
            self.param(name, kind, default=_MISSING if required else None)

    def param(self, name: str, kind: type | tuple[type, ...] = str, *, default: Any = _MISSING
              ) -> Any:
        """The parameter ``name`` checked against ``kind``; PlanError when missing or of
        another type."""
        value = self.spec.params.get(name, default)
        if value is _MISSING:
            raise PlanError(f"step {self.spec.id}", f"{self.spec.kind} needs {name!r}")
        if value is not None and value is not default and not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else \
                " or ".join(k.__name__ for k in kind)
            raise PlanError(f"step {self.spec.id}", f"parameter {name!r} must be a {want}, "
                            f"not {type(value).__name__}")
        return value

    @property
    def id(self) -> str:
        return self.spec.id

    def describe(self, ctx: Context) -> list[str]:
        return []

    def capture(self, ctx: Context) -> dict[str, Any]:
        return {}

    def inverse(self, before: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def apply(self, ctx: Context, before: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def classify(self, ctx: Context, before: Mapping[str, Any]) -> Applied:
        return Applied.NOT_APPLIED

    def undo(self, ctx: Context, before: Mapping[str, Any], undo: Mapping[str, Any]) -> None:
        return None

    def drift(self, ctx: Context, result: Mapping[str, Any]) -> list[str]:
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec.id!r})"
