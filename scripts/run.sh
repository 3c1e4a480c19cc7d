#!/usr/bin/env bash
# The main job: generation with the default model (fetched on first use).
# Usage: scripts/run.sh [PROMPT] [extra minnow run flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -x build/bin/minnow ] || bash scripts/build.sh
MODEL=$(bash scripts/fetch_model.sh)
PROMPT=${1:-The capital of France is}
shift || true
exec build/bin/minnow run -m "$MODEL" -p "$PROMPT" -n 64 "$@"
