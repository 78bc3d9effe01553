#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test (tests/tools/test_devserver_browser.py) when
# /usr/bin/chromium is missing, and a colour emoji font (fonts-noto-color-emoji) when it is
# missing, so that the page's emoji are drawn, not boxes; and Graphviz's dot, which
# `botkit graph --format svg|png` runs (tests/tools/test_graph.py renders the example bots).
# CI runs as root; elsewhere it says
# what to run instead. Playwright drives this Chromium: never `playwright install` (it
# downloads its own browser).
set -euo pipefail
emoji_font=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -f "$emoji_font" ] || missing+=(fonts-noto-color-emoji)
command -v dot >/dev/null || missing+=(graphviz)
if [ "${#missing[@]}" = 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "browser.sh: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
  exit 0
fi
echo "browser.sh: installing ${missing[*]} for the browser and graph tests (apt-get, once)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
