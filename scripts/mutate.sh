#!/usr/bin/env bash
# Mutation harness (outside CI): see scripts/mutate.py. Usage: bash scripts/mutate.sh [--list] [NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 scripts/mutate.py "$@"
