# Shared by the ctest fuzz drivers (run_fuzz.sh, run_jinja_fuzz.sh, run_openai_fuzz.sh); sourced, not run.
# fuzz_build BUILD_DIR TARGET: exits 77 (ctest's skip) when clang++ with libFuzzer is not installed, else builds
#   the libFuzzer TARGET with clang (ASan + UBSan) in BUILD_DIR.
# fuzz_run BUILD_DIR TARGET CORPUS FINDINGS SECONDS MAX_LEN TIMEOUT: runs it for a bounded time over CORPUS;
#   any crash, sanitizer report, time-out or out-of-memory (-rss_limit_mb: a huge allocation from an unchecked
#   count, or unbounded growth) fails with exit 1.

fuzz_build() {
  local bdir="$1" target="$2" src="${MINNOW_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
  local clangxx clangc
  clangxx="$(command -v clang++ || command -v clang++-14 || true)"
  clangc="$(command -v clang || command -v clang-14 || true)"
  if [ -z "$clangxx" ] || ! printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t){return 0;}\n' |
      "$clangxx" -x c++ -fsanitize=fuzzer,address,undefined - -o /dev/null 2>/dev/null; then
    echo "SKIP: clang++ with libFuzzer (clang, libclang-rt-14-dev) is not installed"
    exit 77
  fi
  CC="$clangc" CXX="$clangxx" cmake -S "$src" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMINNOW_FUZZ=ON \
    -DMINNOW_TESTS=OFF -DMINNOW_NATIVE=OFF -DMINNOW_WERROR=OFF >/dev/null
  cmake --build "$bdir" -j"$(nproc)" --target "$target" >/dev/null
}

fuzz_run() {
  local bdir="$1" target="$2" corpus="$3" findings="$4" secs="$5" max_len="$6" timeout="$7" status
  echo "seed corpus: $(ls "$corpus" | wc -l) files"
  export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=0"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  set +e
  "$bdir/bin/$target" "$corpus" -max_total_time="$secs" -max_len="$max_len" -timeout="$timeout" -rss_limit_mb=2048 \
    -artifact_prefix="$findings/" -print_final_stats=1 2>&1 | tail -25
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ] || [ -n "$(ls -A "$findings")" ]; then
    echo "FAIL: fuzzer finding(s) in $findings (exit $status)"
    exit 1
  fi
  echo "fuzzing for ${secs}s found nothing"
}
