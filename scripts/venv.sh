#!/usr/bin/env bash
# Creates .venv and installs botkit with its dev tools, once per version of pyproject.toml.
# Sourced by scripts/run and scripts/test; safe to run again (it only reinstalls when pyproject.toml changes).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.botkit-installed"
want="$(cat "$root/pyproject.toml" "$root/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  echo "venv.sh: creating the virtualenv .venv (once)" >&2
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "venv.sh: installing botkit and its dev tools into .venv (pyproject.toml is new or" \
    "changed; about a minute the first time)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null
  "$venv/bin/python" -m pip install --quiet -c "$root/constraints.txt" -e "$root[dev]"
  echo "$want" > "$stamp"
  echo "venv.sh: .venv is ready" >&2
fi
export PATH="$venv/bin:$PATH"
