#!/usr/bin/env bash
# ctest gguf_asan_malformed: builds the GGUF reader, `minnow-info` and gguf_check with AddressSanitizer +
# UBSan in their own build dir, then runs the malformed-file suite (tests/py/test_gguf_malformed.py) and the
# in-process gtest against them. Any sanitizer report fails the run: the suite demands exactly one
# `error:` line on stderr, and the sanitizers are set to exit non-zero on their first finding.
# Usage: run_malformed_asan.sh BUILD_DIR
set -euo pipefail
src="${MINNOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
bdir="${1:?usage: run_malformed_asan.sh BUILD_DIR}"
py="${PYTHON:-python3}"
cxx="${CXX:-c++}"
if ! echo 'int main(){return 0;}' | "$cxx" -x c++ -fsanitize=address,undefined - -o /dev/null 2>/dev/null; then
  echo "SKIP: $cxx cannot build with -fsanitize=address,undefined"
  exit 77
fi
cmake -S "$src" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMINNOW_ASAN=ON -DMINNOW_NATIVE=OFF \
  -DMINNOW_WERROR=OFF -DMINNOW_SHARED_DIR="${MINNOW_SHARED_DIR:-$src/../shared}" >/dev/null
cmake --build "$bdir" -j"$(nproc)" --target gguf_check minnow_info_only gguf_malformed_gtest >/dev/null

export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:exitcode=99:detect_leaks=1:allocator_may_return_null=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=98"
if ! "$bdir/bin/gguf_check" /dev/null >/dev/null 2>&1; then
  # LeakSanitizer cannot run under ptrace (some containers): keep ASan, drop leak checks.
  export ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}"
fi
echo "== in-process malformed cases (gtest, ASan)"
MINNOW_SHARED_DIR="${MINNOW_SHARED_DIR:-$src/../shared}" "$bdir/bin/gguf_malformed_gtest" --gtest_brief=1
echo "== malformed-file suite against ASan minnow-info and gguf_check"
MINNOW_BIN="$bdir/bin/minnow-info" MINNOW_BIN_DIR="$bdir/bin" MINNOW_GGUF_RANDOM_CASES="${MINNOW_GGUF_RANDOM_CASES:-150}" \
  "$py" -m pytest -q -x "$src/tests/py/test_gguf_malformed.py"
