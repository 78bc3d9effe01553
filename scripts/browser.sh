#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test (tests/test_devserver_browser.py) when
# /usr/bin/chromium is missing. CI runs as root; elsewhere it says what to run instead.
# Playwright drives this Chromium: never `playwright install` (it downloads its own browser).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "browser.sh: no /usr/bin/chromium; install it with: sudo apt-get install -y chromium" >&2
  exit 0
fi
echo "browser.sh: installing Debian's chromium for the browser test" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
