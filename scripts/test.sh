#!/usr/bin/env bash
# The whole test suite: installs what it needs, then lint, types and pytest
# (against real ffmpeg, PostgreSQL on 127.0.0.1:5432, and chromium for the browser tests). Under CI=true a
# missing service is a failure, not a skip. "No tests ran" is a failure too.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test || exit 1
.venv/bin/ruff check . || exit 1
.venv/bin/mypy || exit 1
.venv/bin/pytest --durations=30 "$@"  # the slowest tests printed: keep the suite well inside CI's 90 minutes
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "test.sh: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit "$rc"
