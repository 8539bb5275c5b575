#!/usr/bin/env bash
# The main job on the built-in lab: build the lab's images (cached), start the `current`
# variant (the seed's problematic architecture) and run the diagnose runbook against it.
# Prints the path of the HTML report. Extra arguments go to `revivadiag diagnose`.
# Exit 0 when the report was produced (error findings are the expected result on `current`),
# 2 when the tool failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/bootstrap.sh"
"$root/scripts/ensure-docker.sh"
venv="${REVIVADIAG_VENV:-$root/.venv}"
rd="$venv/bin/revivadiag"
prefix="${REVIVADIAG_DEMO_PREFIX:-revivatech}"
"$rd" lab build
"$rd" lab up --variant current --prefix "$prefix"
"$rd" lab status --prefix "$prefix"
rc=0
"$rd" diagnose -p project "$prefix" "$@" || rc=$?
case "$rc" in
  0) echo "revivadiag: no error findings" >&2 ;;
  1) echo "revivadiag: the report lists error findings (expected: \`current\` is the seed's problem)" >&2 ;;
  *) exit "$rc" ;;
esac
