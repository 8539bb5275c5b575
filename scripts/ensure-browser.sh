#!/usr/bin/env bash
# Debian's chromium, which the report tests drive with Playwright (playwright cannot download
# browsers here). Installs it with apt when root and missing; otherwise says what is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "revivadiag: installing chromium with apt-get (report screenshot tests)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "revivadiag: /usr/bin/chromium is missing (Debian package 'chromium'); report tests need it" >&2
exit 3
