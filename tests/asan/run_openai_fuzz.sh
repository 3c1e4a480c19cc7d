#!/usr/bin/env bash
# ctest openai_request_fuzz: builds the libFuzzer target fuzz/openai_request_fuzz.cpp (OpenAI request bodies
# through the chat and completions parsers) with clang (ASan + UBSan) in its own build dir and runs it for a
# bounded time over the seed corpus of tests/asan/make_openai_seeds.py. Skipped (exit 77) when clang++ with
# libFuzzer is not installed. Any finding fails the test.
# Usage: run_openai_fuzz.sh BUILD_DIR [SECONDS]
set -euo pipefail
src="${MINNOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
bdir="${1:?usage: run_openai_fuzz.sh BUILD_DIR [SECONDS]}"
secs="${2:-${MINNOW_FUZZ_SECONDS:-20}}"
source "$src/tests/asan/fuzz_lib.sh"
fuzz_build "$bdir" openai_request_fuzz
corpus="$bdir/openai-corpus"
findings="$bdir/openai-findings"
rm -rf "$corpus" "$findings"
mkdir -p "$corpus" "$findings"
"${PYTHON:-python3}" "$src/tests/asan/make_openai_seeds.py" "$corpus"
# -max_len covers the deep-nesting seeds.
fuzz_run "$bdir" openai_request_fuzz "$corpus" "$findings" "$secs" 65536 10
