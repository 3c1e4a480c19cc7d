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
py="${PYTHON:-python3}"
clangxx="$(command -v clang++ || command -v clang++-14 || true)"
clangc="$(command -v clang || command -v clang-14 || true)"
if [ -z "$clangxx" ] || ! printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t){return 0;}\n' |
    "$clangxx" -x c++ -fsanitize=fuzzer,address,undefined - -o /dev/null 2>/dev/null; then
  echo "SKIP: clang++ with libFuzzer (clang, libclang-rt-14-dev) is not installed"
  exit 77
fi
CC="$clangc" CXX="$clangxx" cmake -S "$src" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMINNOW_FUZZ=ON \
  -DMINNOW_TESTS=OFF -DMINNOW_NATIVE=OFF -DMINNOW_WERROR=OFF >/dev/null
cmake --build "$bdir" -j"$(nproc)" --target openai_request_fuzz >/dev/null

corpus="$bdir/openai-corpus"
findings="$bdir/openai-findings"
rm -rf "$corpus" "$findings"
mkdir -p "$corpus" "$findings"
"$py" "$src/tests/asan/make_openai_seeds.py" "$corpus"
echo "seed corpus: $(ls "$corpus" | wc -l) files"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# -max_len covers the deep-nesting seeds; -rss_limit_mb: unbounded growth on some input is a finding.
set +e
"$bdir/bin/openai_request_fuzz" "$corpus" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$findings/" -print_final_stats=1 2>&1 | tail -25
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$findings")" ]; then
  echo "FAIL: fuzzer finding(s) in $findings (exit $status)"
  exit 1
fi
echo "fuzzing for ${secs}s found nothing"
