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
clangxx="$(command -v clang++ || command -v clang++-14 || true)"
clangc="$(command -v clang || command -v clang-14 || true)"
if [ -z "$clangxx" ] || ! printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t){return 0;}\n' |
    "$clangxx" -x c++ -fsanitize=fuzzer,address,undefined - -o /dev/null 2>/dev/null; then
  echo "SKIP: clang++ with libFuzzer (clang, libclang-rt-14-dev) is not installed"
  exit 77
fi
CC="$clangc" CXX="$clangxx" cmake -S "$src" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMINNOW_FUZZ=ON \
  -DMINNOW_TESTS=OFF -DMINNOW_NATIVE=OFF -DMINNOW_WERROR=OFF >/dev/null
cmake --build "$bdir" -j"$(nproc)" --target jinja_fuzz >/dev/null

corpus="$bdir/corpus"
rm -rf "$corpus" "$bdir/findings"
mkdir -p "$corpus" "$bdir/findings"
cp "$src"/fuzz/jinja_corpus/* "$corpus"/
if [ -d "$shared/templates" ]; then cp "$shared"/templates/*.jinja "$corpus"/ 2>/dev/null || true; fi
echo "seed corpus: $(ls "$corpus" | wc -l) files"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The seeds are up to ~160 KB (20,000-term chains); -rss_limit_mb: unbounded growth is an out-of-memory finding.
set +e
"$bdir/bin/jinja_fuzz" "$corpus" -max_total_time="$secs" -max_len=200000 -timeout=15 -rss_limit_mb=2048 \
  -artifact_prefix="$bdir/findings/" -print_final_stats=1 2>&1 | tail -25
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] || [ -n "$(ls -A "$bdir/findings")" ]; then
  echo "FAIL: fuzzer finding(s) in $bdir/findings (exit $status)"
  exit 1
fi
echo "fuzzing for ${secs}s found nothing"
