#!/usr/bin/env bash
# Debian packages the tests use on the host, installed with apt when root and missing:
#   chromium        the report tests drive it with Playwright (playwright cannot download browsers here)
#   busybox-static  a static busybox for the FROM-scratch test image (a container with no shell)
#   openssh-server  a real sshd on 127.0.0.1 for the ssh:// engine tests (started by the test)
# Otherwise says what is missing and exits 3.
set -euo pipefail
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || need+=(busybox-static)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "revivadiag: installing ${need[*]} with apt-get (test tools)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  exit 0
fi
echo "revivadiag: missing Debian package(s) the tests need: ${need[*]}" >&2
exit 3
