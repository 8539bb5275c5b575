#!/usr/bin/env bash
# Make sure a Docker Engine answers. On a fresh Debian-like machine, as root, install
# docker.io, docker-compose and mmdebstrap with apt and start dockerd in the background.
# Otherwise stop with a message that says exactly what is missing.
set -euo pipefail

log_dir="${REVIVADIAG_STATE_DIR:-$HOME/.local/state/revivadiag}"
timeout_s="${REVIVADIAG_DOCKERD_TIMEOUT:-60}"

engine_answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && engine_answers; then
  exit 0
fi
if [ -n "${DOCKER_HOST:-}" ]; then
  echo "revivadiag: DOCKER_HOST=${DOCKER_HOST} is set but no Docker Engine answers there." >&2
  exit 3
fi

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need_pkgs+=(docker-compose)
command -v mmdebstrap >/dev/null 2>&1 || need_pkgs+=(mmdebstrap)

if [ "$(id -u)" != 0 ]; then
  echo "revivadiag: no Docker Engine answers, and only root can install or start one here." >&2
  [ ${#need_pkgs[@]} -gt 0 ] && echo "  missing packages: ${need_pkgs[*]}" >&2
  echo "  start dockerd (or set DOCKER_HOST) and run this command again." >&2
  exit 3
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "revivadiag: no Docker Engine and no apt-get to install one; missing: ${need_pkgs[*]}" >&2
    exit 3
  fi
  echo "revivadiag: installing ${need_pkgs[*]} with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

mkdir -p "$log_dir"
if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "revivadiag: starting dockerd (log: $log_dir/dockerd.log)" >&2
  # Docker's default address pools give ~31 bridge networks; the tests run several lab copies
  # at once (up to 4 networks each). Carve /24 networks out of a private /16 that no route
  # on this host uses yet (REVIVADIAG_ADDRESS_POOL overrides), 256 networks in all.
  pool_args=()
  pool="${REVIVADIAG_ADDRESS_POOL:-}"
  if [ -z "$pool" ]; then
    for cand in 10.213 10.214 10.215 172.26 172.27; do
      if ! ip -4 route 2>/dev/null | grep -q "^${cand}\."; then pool="${cand}.0.0/16"; break; fi
    done
  fi
  [ -n "$pool" ] && pool_args=(--default-address-pool "base=${pool},size=24")
  nohup dockerd "${pool_args[@]}" >"$log_dir/dockerd.log" 2>&1 &
  echo $! >"$log_dir/dockerd.pid"
fi
for _ in $(seq 1 "$timeout_s"); do
  if engine_answers; then exit 0; fi
  sleep 1
done
echo "revivadiag: dockerd did not answer 'docker info' within ${timeout_s}s; see $log_dir/dockerd.log" >&2
tail -n 20 "$log_dir/dockerd.log" >&2 || true
exit 3
