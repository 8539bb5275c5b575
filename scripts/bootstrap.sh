#!/usr/bin/env bash
# Create .venv (Python >= 3.11) and install revivadiag with its dev extras into it.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${REVIVADIAG_VENV:-$root/.venv}"

pick_python() {
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "revivadiag: Python 3.11 or newer is needed (none found on PATH)" >&2
  return 1
}

if [ ! -x "$venv/bin/python" ]; then
  py="$(pick_python)"
  echo "revivadiag: creating $venv with $py" >&2
  "$py" -m venv "$venv" || { echo "revivadiag: '$py -m venv' failed (Debian: apt-get install python3-venv)" >&2; exit 3; }
fi

stamp="$venv/.revivadiag-installed"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "revivadiag: installing the package and its dependencies into $venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$root[dev]"
  echo "$want" >"$stamp"
fi
