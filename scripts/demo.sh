#!/usr/bin/env bash
# The main job on the built-in lab: build the lab's images (cached), start the `current`
# variant, and run the diagnose runbook against it. Extra arguments go to `revivadiag diagnose`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/bootstrap.sh"
"$root/scripts/ensure-docker.sh"
venv="${REVIVADIAG_VENV:-$root/.venv}"
rd="$venv/bin/revivadiag"
"$rd" lab build
"$rd" lab up --variant current
"$rd" lab status
