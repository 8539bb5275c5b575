"""Migrations of a Compose project: a plan (YAML), steps with undo computed from the
engine's before-state, a journal, a lock, resume, rollback and an approval gate.

Modules (the seams between them are the types in :mod:`revivadiag.migrate.model`):

- ``model``    the shared vocabulary: statuses, step specs, the ``Step`` protocol, ``Context``
- ``plan``     a plan file: schema, loading, validation (``PlanError``), fingerprint, drafts
- ``state``    the live state of a project, captured from the engine (no secret values)
- ``planner``  plans computed from the live project and target compose files
- ``draft``    a draft plan and target compose file from the diagnose findings
- ``labplans`` the lab's shipped plans (templates) and what running them needs
- ``plan_cli`` ``revivadiag migrate plan`` and ``migrate draft``
- ``steps``    one module per step kind: apply, undo, classify, drift
- ``switch``   replacing a service's container: blue-green beside it, or in place
- ``journal``  the append-only local journal and its PostgreSQL mirror
- ``lock``     one run per project at a time
- ``run``      the executor: gate, steps, automatic rollback, resume
- ``prober``   the bounded request prober that runs through every migration
"""
