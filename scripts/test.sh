#!/usr/bin/env bash
# The whole test suite: lint (ruff), types (mypy), then pytest (unit, integration against a
# real Docker Engine and the reference lab, and nbval on the notebooks). Extra arguments go
# to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/bootstrap.sh"
"$root/scripts/ensure-docker.sh"
"$root/scripts/ensure-test-tools.sh"
venv="${REVIVADIAG_VENV:-$root/.venv}"
"$venv/bin/ruff" check revivadiag tests benchmarks scripts
"$venv/bin/mypy"
"$venv/bin/python" -m pytest "$@"
