#!/usr/bin/env bash
# The browser the dashboard tests drive: Debian's chromium at /usr/bin/chromium, installed from
# the distribution's packages when absent. Playwright drives it as it is; its own browser
# downloads are never used. Without root (or apt), say so and go on: those tests then skip, or
# fail under CI=true.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [[ -x $CHROMIUM ]]; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "browser.sh: $CHROMIUM is missing; install Debian's chromium package (as root: apt-get install -y chromium)" >&2
  exit 0
fi
echo "browser.sh: installing Debian's chromium..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
"$CHROMIUM" --version >&2 || true
