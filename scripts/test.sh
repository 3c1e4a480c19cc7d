#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings as errors, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch_model.sh >/dev/null
bash scripts/build.sh -DMINNOW_WERROR=ON
cd build && ctest --output-on-failure -j"$(nproc)" "$@"
