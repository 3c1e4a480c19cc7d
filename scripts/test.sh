#!/usr/bin/env bash
# The test command: installs what is missing, builds with warnings as errors, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch_model.sh >/dev/null
bash scripts/fetch_gemma.sh >/dev/null  # the real Gemma 3 270M (its golden, perplexity and 262k vocabulary)
# The CUDA backend is compiled wherever nvcc is present (its GPU tests skip when no GPU is found).
cuda_flags=()
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  cuda_flags=(-DMINNOW_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${MINNOW_CUDA_ARCHS:-90}")
  command -v nvcc >/dev/null 2>&1 || cuda_flags+=(-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)
fi
bash scripts/build.sh -DMINNOW_WERROR=ON "${cuda_flags[@]}"
if [ ${#cuda_flags[@]} -gt 0 ]; then
  # A build without CUDA must keep working too: compile the binary without it as well.
  cmake -S . -B build-nocuda -DCMAKE_BUILD_TYPE=Release -DMINNOW_WERROR=ON -DMINNOW_TESTS=OFF >/dev/null
  cmake --build build-nocuda -j"$(nproc)" --target minnow
fi
cd build
rc=0
ctest --output-on-failure -j"$(nproc)" "$@" || rc=$?
# Every skipped test (ctest's and pytest's) with its reason, so a new silent skip shows.
python3 ../scripts/skip_summary.py Testing/Temporary/LastTest.log || true
exit "$rc"
