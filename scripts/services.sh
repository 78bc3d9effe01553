#!/usr/bin/env bash
# Starts the local services the tests use (PostgreSQL on 127.0.0.1:5432) when they are not running.
set -euo pipefail
# (The PostgreSQL store's tests use it, in a database of their own per run. A machine without a
# local cluster is not an error: those tests are skipped there, and fail in CI.)
if command -v pg_isready >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null 2>&1 \
    && [ -d /etc/postgresql ] && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "services.sh: starting the local PostgreSQL for the PostgreSQL store's tests" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
