#!/usr/bin/env bash
# ctest jinja_fuzz: builds the libFuzzer target fuzz/jinja_fuzz.cpp with clang (ASan + UBSan) in its own build
# dir and runs it for a bounded time over a seed corpus: fuzz/jinja_corpus (every hostile case of issue 18) plus
# the real templates in ../shared/templates (copied into the build dir, never into the repo).
# Skipped (exit 77) when clang++ with libFuzzer is not installed. Any finding fails the test.
# Usage: run_jinja_fuzz.sh BUILD_DIR [SECONDS]
set -euo pipefail
src="${MINNOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
bdir="${1:?usage: run_jinja_fuzz.sh BUILD_DIR [SECONDS]}"
secs="${2:-${MINNOW_FUZZ_SECONDS:-20}}"
shared="${MINNOW_SHARED_DIR:-$src/../shared}"
source "$src/tests/asan/fuzz_lib.sh"
fuzz_build "$bdir" jinja_fuzz
corpus="$bdir/corpus"
rm -rf "$corpus" "$bdir/findings"
mkdir -p "$corpus" "$bdir/findings"
cp "$src"/fuzz/jinja_corpus/* "$corpus"/
if [ -d "$shared/templates" ]; then cp "$shared"/templates/*.jinja "$corpus"/ 2>/dev/null || true; fi
# The seeds are up to ~160 KB (20,000-term chains).
fuzz_run "$bdir" jinja_fuzz "$corpus" "$bdir/findings" "$secs" 200000 15
