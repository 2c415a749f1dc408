#!/usr/bin/env bash
# The main job on the embedded default (SQLite + local WORM store, no services):
# generate sample recorders, ingest each, print what was catalogued.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
export EVIDENCE_HOME="${EVIDENCE_HOME:-$PWD/evidence-data}"
exec .venv/bin/evidence demo "$@"
