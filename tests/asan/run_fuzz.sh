#!/usr/bin/env bash
# ctest gguf_fuzz: builds the libFuzzer target fuzz/gguf_fuzz.cpp with clang (ASan + UBSan) in its own build
# dir and runs it for a bounded time over a seed corpus made from the vocab files (tests/asan/make_seeds.py).
# Skipped (exit 77) when clang++ with libFuzzer is not installed. Any finding fails the test.
# Usage: run_fuzz.sh BUILD_DIR [SECONDS]
set -euo pipefail
src="${MINNOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
bdir="${1:?usage: run_fuzz.sh BUILD_DIR [SECONDS]}"
secs="${2:-${MINNOW_FUZZ_SECONDS:-20}}"
source "$src/tests/asan/fuzz_lib.sh"
fuzz_build "$bdir" gguf_fuzz
corpus="$bdir/corpus"
rm -rf "$corpus" "$bdir/findings"
mkdir -p "$corpus" "$bdir/findings"
"${PYTHON:-python3}" "$src/tests/asan/make_seeds.py" "${MINNOW_SHARED_DIR:-$src/../shared}" "$corpus"
fuzz_run "$bdir" gguf_fuzz "$corpus" "$bdir/findings" "$secs" 16384 10
