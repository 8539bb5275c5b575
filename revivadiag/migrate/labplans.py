"""The plans shipped for the reference lab, and what running them on a lab instance needs.

``revivadiag/lab/plans/lab.yml`` (seed stack, ``current`` -> ``target``) and ``shop.yml``
(``shop-current`` -> ``shop-target``) are *templates*: a lab instance's names carry its
prefix (``rdt<hex>`` in the tests), so the files write the prefix as ``${LAB_PREFIX}`` (the
variable the lab's compose files use too) and carry no fingerprint (``fingerprint: null``):
no shipped file can know a fresh lab's state. :func:`lab_plan` renders one for a prefix;
:func:`check_fresh <revivadiag.migrate.plan.check_fresh>` refuses it until it is planned
against the running project, which ``revivadiag migrate plan`` does (and which
:func:`plan_lab` does for a lab instance). The templates are themselves made by
``make_plan`` against a running lab: ``revivadiag migrate plan --lab PREFIX --template``
writes them again, and a test checks that a fresh plan equals the shipped one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from revivadiag.errors import ParameterError
from revivadiag.migrate.model import StepSpec
from revivadiag.migrate.plan import Plan, dump_plan, loads_plan
from revivadiag.migrate.planner import make_plan

PLANS_DIR = Path(__file__).resolve().parent.parent / "lab" / "plans"
PLACEHOLDER = "${LAB_PREFIX}"
#: stack -> (plan file, source variant, target variant)
LAB_PLANS: dict[str, tuple[str, str, str]] = {
    "seed": ("lab.yml", "current", "target"),
    "shop": ("shop.yml", "shop-current", "shop-target"),
}


def plan_file(stack: str) -> Path:
    """The shipped template of ``stack`` (``seed`` or ``shop``)."""
    if stack not in LAB_PLANS:
        raise ParameterError("stack", stack, f"expected one of {', '.join(LAB_PLANS)}")
    return PLANS_DIR / LAB_PLANS[stack][0]


def lab_plan(prefix: str, stack: str) -> Plan:
    """The shipped plan of ``stack`` rendered for the lab instance ``prefix`` (no fingerprint:
    plan it with :func:`plan_lab` or ``revivadiag migrate plan`` before running it)."""
    path = plan_file(stack)
    text = path.read_text(encoding="utf-8").replace(PLACEHOLDER, prefix)
    return loads_plan(text, path)


def stack_of_prefix(prefix: str) -> str:
    """The stack a running lab instance runs (from its stored config)."""
    from revivadiag.lab.state import load_config

    config = load_config(prefix)
    if config is None:
        raise ParameterError("lab prefix", prefix, "no lab instance of that prefix is known")
    return config.stack.name


def target_env(prefix: str) -> dict[str, str]:
    """The variables the target compose files of lab instance ``prefix`` need (its ports,
    profile, external networks, secrets): what ``lab up`` would pass for the target variant.
    Secrets included: memory only."""
    from revivadiag.lab.compose import compose_env
    from revivadiag.lab.config import LabConfig
    from revivadiag.lab.state import load_config, read_secrets

    config = load_config(prefix)
    if config is None:
        raise ParameterError("lab prefix", prefix, "no lab instance of that prefix is known")
    target = LabConfig(prefix=prefix, variant=LAB_PLANS[config.stack.name][2],
                       profile=config.profile, ports=config.ports, publish=config.publish)
    import os

    return {**os.environ, **compose_env(target, read_secrets(prefix))}


def plan_lab(client: Any, prefix: str, stack: str | None = None,
             plan_dir: Path = PLANS_DIR) -> Plan:
    """``make_plan`` from the running lab instance ``prefix`` to its stack's target files
    (paths relative to ``plan_dir``, default the shipped plans' directory)."""
    from revivadiag.lab.compose import compose_files

    stack = stack or stack_of_prefix(prefix)
    _, _, target_variant = LAB_PLANS[stack]
    files = compose_files(target_variant, "production")  # the target's own file, no override
    directory = files[0].parent
    plan = make_plan(client, prefix, files, compose_env=target_env(prefix),
                     project_directory=directory,
                     name=f"lab-{LAB_PLANS[stack][1]}-to-{target_variant}",
                     plan_dir=plan_dir)
    return plan


def _swap(value: Any, prefix: str) -> Any:
    if isinstance(value, str):
        return value.replace(prefix, PLACEHOLDER)
    if isinstance(value, list):
        return [_swap(v, prefix) for v in value]
    if isinstance(value, dict):
        return {_swap(k, prefix): _swap(v, prefix) for k, v in value.items()}
    return value


def as_template(plan: Plan, prefix: str) -> str:
    """The plan as a shipped template: the prefix written as ``${LAB_PREFIX}`` (quoted where
    YAML needs it), no fingerprint, no planning time, no per-object hashes, no source."""
    steps = [StepSpec(s.id, s.kind, _swap(dict(s.params), prefix)) for s in plan.steps]
    comments = {k: _swap(v, prefix) for k, v in plan.comments.items()}
    comments[""] = [
        f"The shipped plan {plan.name}: a template ({PLACEHOLDER} is the lab instance's "
        "prefix, rendered by revivadiag.migrate.labplans.lab_plan).",
        "Made by make_plan against a running lab (revivadiag migrate plan --lab PREFIX "
        "--template); it has no fingerprint: plan it against the running project first "
        "(revivadiag migrate plan --lab PREFIX -o plan.yml).",
        *[line for line in plan.comments.get("", []) if line.startswith("Roles:")],
    ]
    bare = dataclasses.replace(plan, project=PLACEHOLDER, steps=steps, fingerprint=None,
                               planned_at=None, fingerprint_parts={}, source=None,
                               comments=comments)
    return dump_plan(bare)
