#!/usr/bin/env bash
# minnow against llama.cpp on the same synthetic files, in one run (one device call on the GPU machine, or here on
# the CPU). For each preset it writes a Q4_K_M model with synth_model, then times `minnow bench` and llama.cpp's
# `llama-bench` (pp512 and tg128, 5 repetitions each) and prints one table: t/s of each and the ratio.
#
# Usage: bash scripts/bench_vs_llama.sh cuda|cpu BIN_DIR LLAMA_SRC_TARBALL VOCAB_DIR [PRESETS...]
#   BIN_DIR: minnow and synth_model; LLAMA_SRC_TARBALL: ../shared/ref/llama.cpp-*.tar.xz (a measuring instrument,
#   built here in the background: CUDA for sm_90 with flash attention on, or the CPU with AMX off);
#   VOCAB_DIR: ../shared/vocab (or a carried copy). PRESETS default to every architecture's shape.
# Environment: BENCH_THREADS (CPU threads, default 2), BENCH_JOBS (build jobs, default 13), OUT (logs; default
# /tmp/bench_vs_llama), BENCH_DEPTH (also time at this depth, e.g. 2048; default none), BENCH_REPS (default 5),
# BENCH_LLAMA_BUILT=1 (llama.cpp already built in /tmp/llama-ref by an earlier run: not built again).
set -uo pipefail
DEV=${1:?cuda|cpu}; BIN=${2:?BIN_DIR}; TARBALL=${3:?LLAMA_SRC_TARBALL}; VOCAB=${4:?VOCAB_DIR}; shift 4
PRESETS=("$@")
[ ${#PRESETS[@]} -eq 0 ] && PRESETS=(tinyllama-1.1b:llama-spm llama-3.2-1b:llama-bpe smollm2-135m:gpt-2
                                    qwen2.5-0.5b:qwen2 qwen3-0.6b:qwen2 gemma3-1b:llama-spm phi3-mini:phi-3)
OUT=${OUT:-/tmp/bench_vs_llama}; mkdir -p "$OUT"
TH=${BENCH_THREADS:-2}; JOBS=${BENCH_JOBS:-13}; R=${BENCH_REPS:-5}
LL=/tmp/llama-ref
# ---- llama.cpp, built in the background while the models are written -------------------------------------------
[ "${BENCH_LLAMA_BUILT:-0}" = 1 ] || (
  rm -rf $LL; mkdir -p $LL && tar -xJf "$TARBALL" -C $LL && cd $LL/llama.cpp* || exit 1
  flags=(-DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
         -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF)
  if [ "$DEV" = cuda ]; then flags+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
  else flags+=("-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"); fi
  cmake -B build "${flags[@]}" > "$OUT/llama_build.log" 2>&1 &&
    cmake --build build -j"$JOBS" --target llama-bench llama-batched-bench >> "$OUT/llama_build.log" 2>&1
) &
build_pid=$!
models=()
for spec in "${PRESETS[@]}"; do
  preset=${spec%%:*}; vocab=${spec##*:}
  f=/tmp/bvl_$preset.gguf
  [ -f "$f" ] || "$BIN/synth_model" --preset "$preset" --vocab "$VOCAB/ggml-vocab-$vocab.gguf" --type Q4_K_M -o "$f" \
    -t 8 > "$OUT/synth_$preset.log" 2>&1 || { echo "synth_model $preset failed: $(tail -1 "$OUT/synth_$preset.log")"; continue; }
  models+=("$preset")
done
wait $build_pid || { tail -20 "$OUT/llama_build.log"; echo "llama.cpp build failed"; }
LB=$(ls -d $LL/llama.cpp*/build/bin 2>/dev/null | head -1)
depth_args=(); [ -n "${BENCH_DEPTH:-}" ] && depth_args=(-d "0,$BENCH_DEPTH")
rows=()
for preset in "${models[@]}"; do
  f=/tmp/bvl_$preset.gguf
  if [ "$DEV" = cuda ]; then
    "$BIN/minnow" bench --device cuda -m "$f" -p 512 -n 128 "${depth_args[@]}" -r "$R" -o json > "$OUT/m_$preset.json" 2> "$OUT/m_$preset.err"
    [ -x "$LB/llama-bench" ] && "$LB/llama-bench" -m "$f" -p 512 -n 128 ${BENCH_DEPTH:+-d 0,$BENCH_DEPTH} -r "$R" -fa 1 -ngl 99 -o json \
      > "$OUT/l_$preset.json" 2> "$OUT/l_$preset.err"
  else
    "$BIN/minnow" bench --device cpu -t "$TH" -m "$f" -p 512 -n 128 "${depth_args[@]}" -r "$R" -o json > "$OUT/m_$preset.json" 2> "$OUT/m_$preset.err"
    [ -x "$LB/llama-bench" ] && "$LB/llama-bench" -m "$f" -p 512 -n 128 ${BENCH_DEPTH:+-d 0,$BENCH_DEPTH} -r "$R" -t "$TH" -o json \
      > "$OUT/l_$preset.json" 2> "$OUT/l_$preset.err"
  fi
  rows+=("$preset")
done
python3 - "$OUT" "$DEV" "${rows[@]}" <<'PY' | tee "$OUT/table.md"
import json, os, sys
out, dev, presets = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return []
def key(r):
    return (r.get("n_prompt", 0), r.get("n_gen", 0), r.get("n_depth", 0))
print(f"| model ({dev}) | test | minnow t/s | llama.cpp t/s | ratio |")
print("| --- | --- | ---: | ---: | ---: |")
for p in presets:
    m = {key(r): r["avg_ts"] for r in load(os.path.join(out, f"m_{p}.json"))}
    l = {key(r): r["avg_ts"] for r in load(os.path.join(out, f"l_{p}.json"))}
    for k in sorted(m, key=lambda k: (k[2], -k[0])):
        name = (f"pp{k[0]}" if k[0] else f"tg{k[1]}") + (f" @ d{k[2]}" if k[2] else "")
        lv = l.get(k)
        print(f"| {p} | {name} | {m[k]:.1f} | {lv:.1f} | {m[k] / lv:.2f}x |" if lv else f"| {p} | {name} | {m[k]:.1f} | - | - |")
PY
