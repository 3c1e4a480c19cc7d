#!/usr/bin/env bash
# The single device script for the CUDA backend (issue 4): in one call on the GPU machine it
#   1. uses the binaries carried in .carry/bin (built on the dev machine with -DMINNOW_CUDA=ON; their
#      non-CUDA shared libraries in .carry/lib) or, when those are absent, builds here with cmake + nvcc;
#   2. runs the CUDA unit tests (tests/unit/test_cuda_kernels, _large, _features: every kernel and every layer
#      feature against a host reference; _models: the whole backend against the CPU backend on every
#      architecture's small model) and the kernel timings (test_cuda_perf);
#   3. runs the golden checks on the GPU (tests/py/test_golden.py with MINNOW_TEST_DEVICE=cuda, every golden it
#      knows: ../shared/golden/*.jsonl with their models, MINNOW_SHARED_DIR pointing at the carried copy of
#      ../shared), and compares GPU with CPU logits on every architecture's small model (models/*-tiny.gguf),
#      through both the prefill path (one pass) and the decode path (-b 1);
#   4. writes the TinyLlama-shaped Q4_K_M model with synth_model, compares GPU and CPU logits (same KL bounds)
#      and greedy output on a few prompts;
#   4b. checks bitwise batch invariance of the decode path on every small model (tests/py/test_cuda_batch_invariance.py);
#   5. runs `minnow bench --device cuda` (pp512, tg128, and both at depth 2048) and prints a table last;
#      then tg128 (depth 0 and 2048) again with each env setting of GPU_CHECK_AB (default: none) and once more
#      with the default path;
#   6. (GPU_CHECK_SERVER=1, default) the server load bench (tests/py/server_bench.py) at 32 and 128 clients.
# Settings (environment): GPU_CHECK_ONLY=bench (skip 2-4), GPU_CHECK_NCU=0 (no Nsight Compute profiles),
#   GPU_CHECK_AB="A=1 B=2,C=3" (tg128 again with each setting; "," joins variables), GPU_CHECK_BINS="name ..."
#   (other builds carried in .carry/bin: logits compared bitwise, pp512/tg128 timed), GPU_CHECK_BITWISE="A=1 ..."
#   (settings that must not change any logit), GPU_CHECK_KTRACE=1 (in-graph kernel timeline, MINNOW_CUDA_TRACE),
#   GPU_CHECK_SERVER=0 (skip 6),
#   GPU_CHECK_SERVER_SPECS="clients alone-checks env;..." (default "32 32 -;128 4 -;128 4 MINNOW_CUDA_F16W=auto").
# Logs go to $OUT (the device tool's output folder) or /tmp/gpu_check.
# Usage (device): bash scripts/gpu_check.sh [quick]     (quick: skip steps 4-5)
# Preparing .carry on the dev machine (git-ignored; the device has no Debian dev packages and no ../shared):
#   cmake -S . -B build-cuda -DMINNOW_CUDA=ON && cmake --build build-cuda -j2 --target minnow synth_model \
#     test_cuda_kernels test_cuda_large test_cuda_features test_cuda_models test_cuda_perf
#   S=/tmp/carry-stage; rm -rf $S; mkdir -p $S/bin $S/lib $S/shared/{models,golden,vocab}
#   for b in minnow synth_model test_cuda_kernels test_cuda_large test_cuda_features test_cuda_models test_cuda_perf; do
#     strip -o $S/bin/$b build-cuda/bin/$b; done
#   cp -L /lib/x86_64-linux-gnu/{libpcre2-8.so.0,libutf8proc.so.2,libcpp-httplib.so.0.11,libfmt.so.9} $S/lib/
#   cp -L /lib/x86_64-linux-gnu/libbrotli{dec,enc,common}.so.1 $S/lib/
#   cp ../shared/models/tiny-llama-q4km.gguf ../shared/models/*-tiny.gguf $S/shared/models/
#   cp ../shared/golden/*.jsonl $S/shared/golden/
#   cp ../shared/vocab/ggml-vocab-llama-spm.gguf $S/shared/vocab/
#   rm -rf .carry; mkdir .carry; tar -C $S -cf - . | xz -6 -T2 > .carry/carry.tar.xz
#   (~40 MB: the seven binaries are ~43 MB unpacked but ~3 MB packed, the six small models ~36 MB; the carry
#   limit is 64 MiB. The real models of smollm2-135m / gemma3-270m do not fit beside them: test_golden.py skips a
#   golden whose model is absent.) The script unpacks .carry/carry.tar.xz into .carry first.
# then run it with the device tool, carry [".carry"].
set -uo pipefail
MODE=${1:-}
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
CARRY=.carry
SHARED=$CARRY/shared
export PYTHONUNBUFFERED=1
summary=()
note() { summary+=("$1"); echo "== $1"; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"

if [ -f "$CARRY/carry.tar.xz" ] && [ ! -x "$CARRY/bin/minnow" ]; then  # packed carry (see the header)
  python3 -c "import tarfile, sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$CARRY/carry.tar.xz" "$CARRY" ||
    echo "could not unpack $CARRY/carry.tar.xz"
fi
if [ -x "$CARRY/bin/minnow" ]; then
  BIN=$CARRY/bin
  export LD_LIBRARY_PATH=$PWD/$CARRY/lib:${LD_LIBRARY_PATH:-}
  if ldd "$BIN/minnow" | grep -q "not found"; then ldd "$BIN/minnow" | grep "not found"; fi
else
  t0=$(date +%s)
  cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DMINNOW_CUDA=ON -DMINNOW_NATIVE=OFF > "$OUT/build.log" 2>&1 &&
    cmake --build build-gpu -j16 --target minnow synth_model test_cuda_kernels test_cuda_large test_cuda_features \
      test_cuda_models test_cuda_perf >> "$OUT/build.log" 2>&1 ||
    { tail -30 "$OUT/build.log"; echo "build failed"; exit 1; }
  BIN=build-gpu/bin
  note "built on the device in $(( $(date +%s) - t0 )) s"
fi

ONLY=${GPU_CHECK_ONLY:-}  # "bench": skip the unit tests, golden checks and GPU-vs-CPU comparison
if [ "$ONLY" != bench ]; then
# ---- 2. unit tests and kernel timings ------------------------------------------------------------------
rc=0
for t in test_cuda_kernels test_cuda_large test_cuda_features test_cuda_models; do
  [ -x "$BIN/$t" ] || continue
  MINNOW_SHARED_DIR=$SHARED timeout 180 "$BIN/$t" >> "$OUT/unit.log" 2>&1 || rc=1
done
grep -E "^\[  (PASSED|FAILED|SKIPPED) |OK \]|FAILED  \]|Failure|Expected|Which is|actual" "$OUT/unit.log" | head -40
note "unit tests (test_cuda_kernels, _large, _features, _models): rc=$rc, $(grep -c '       OK ' "$OUT/unit.log") ok, $(grep -c '  SKIPPED \]' "$OUT/unit.log") skipped, $(grep -c 'FAILED  \]' "$OUT/unit.log") failed lines"
timeout 180 "$BIN/test_cuda_perf" > "$OUT/perf.log" 2>&1
grep "\[perf\]" "$OUT/perf.log"

# ---- 2b. one profile each of a mat-vec and an attention kernel (Nsight Compute, clocks left alone) -----------
if command -v ncu > /dev/null && [ "${GPU_CHECK_NCU:-1}" != 0 ]; then
  for spec in "k_matvec 2500" "k_matvec 500" "k_attn 2600"; do
    set -- $spec
    timeout 120 ncu --clock-control none --kernel-name "regex:$1" --launch-skip "$2" --launch-count 1 \
      --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
      "$BIN/test_cuda_perf" > "$OUT/ncu_$1_$2.txt" 2>&1
    grep -E "k_matvec|k_attn|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per|Dynamic Shared|Grid Size|Block Size|Stall|cycles being stalled" "$OUT/ncu_$1_$2.txt" | head -24
  done
  set --
fi

# ---- 3. goldens on the GPU, and GPU vs CPU on every architecture's small model ----------------------------
MINNOW_BIN=$BIN/minnow MINNOW_SHARED_DIR=$SHARED MINNOW_TEST_DEVICE=cuda timeout 900 python3 -m pytest -q -s \
  tests/py/test_golden.py -p no:cacheprovider > "$OUT/golden.log" 2>&1
rc=$?
grep -E "prompt [0-9]|passed|failed|skipped|Error|assert" "$OUT/golden.log" | head -40
note "golden (GPU, tests/py/test_golden.py, MINNOW_TEST_DEVICE=cuda): rc=$rc: $(tail -1 "$OUT/golden.log")"
BIN=$BIN SHARED=$SHARED timeout 600 python3 - <<'PY' 2>&1 | tee "$OUT/arch_compare.log"
# GPU vs CPU logits on every small model: 120 tokens teacher-forced in one pass (the prefill path) and one token
# per pass (-b 1, the decode path); KL over the CPU's top 40 as in the goldens, argmax where the CPU's gap > 0.5.
import glob, os, subprocess, tempfile
import numpy as np
BIN, SHARED = os.environ["BIN"] + "/minnow", os.environ["SHARED"]
toks = [1] + [(i * 7919 + 13) % 28000 + 100 for i in range(119)]
def logits(model, dev, extra=()):
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([BIN, "score", "-m", model, "--tokens", ",".join(map(str, toks)), "--top", "1", "--dump", d,
                            "--device", dev, "-c", "256", *extra], capture_output=True, text=True)
        if r.returncode != 0:
            return None, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"
        files = [os.path.join(d, "logits.npy")] + sorted(glob.glob(os.path.join(d, "logits.call*.npy")),
                                                        key=lambda f: int(f.split("call")[-1][:-4]))
        return np.concatenate([np.load(f) for f in files]).astype(np.float64), ""
ok = True
for model in sorted(glob.glob(os.path.join(SHARED, "models/*-tiny.gguf"))):
    name = os.path.basename(model)
    lc, err = logits(model, "cpu")
    if lc is None:
        print(f"{name}: CPU does not load it ({err}): skipped")
        continue
    for tag, extra in (("prefill", ()), ("decode -b 1", ("-b", "1"))):
        lg, err = logits(model, "cuda", extra)
        if lg is None:
            print(f"{name} [{tag}]: CUDA FAILED: {err}")
            ok = False
            continue
        kls, mism = [], 0
        for i in range(len(toks)):
            ids = np.argsort(-lc[i])[:40]
            p = np.exp(lc[i, ids] - lc[i, ids].max()); p /= p.sum()
            q = np.exp(lg[i, ids] - lg[i, ids].max()); q /= q.sum()
            kls.append(float(np.sum(p * (np.log(p) - np.log(q)))))
            s = np.sort(lc[i])[::-1]
            if s[0] - s[1] > 0.5 and np.argmax(lg[i]) != ids[0]: mism += 1
        kls = np.array(kls)
        good = bool(np.all(np.isfinite(lg))) and kls.mean() <= 0.01 and kls.max() <= 0.05 and mism == 0
        ok &= good
        print(f"{name} [{tag}]: mean KL {kls.mean():.2e}, max KL {kls.max():.2e}, argmax mismatches {mism} -> "
              f"{'OK' if good else 'FAIL'}")
print("arch GPU vs CPU:", "OK" if ok else "FAIL")
PY
note "$(tail -1 "$OUT/arch_compare.log")"

fi  # ONLY != bench
[ "$MODE" = quick ] && { printf '%s\n' "${summary[@]}"; exit 0; }

# ---- 4. TinyLlama-shaped model: GPU vs CPU --------------------------------------------------------------
TL=/tmp/tl.gguf
t0=$(date +%s)
"$BIN/synth_model" --preset tinyllama-1.1b --vocab "$SHARED/vocab/ggml-vocab-llama-spm.gguf" --type Q4_K_M -o $TL -t 16 \
  > "$OUT/synth.log" 2>&1 || { tail -5 "$OUT/synth.log"; note "synth_model FAILED"; }
note "synth_model: $(( $(date +%s) - t0 )) s, $(du -m $TL 2>/dev/null | cut -f1) MiB"
if [ -f $TL ] && [ "$ONLY" != bench ]; then
  BIN=$BIN TL=$TL timeout 400 python3 - <<'PY' 2>&1 | tee "$OUT/compare.log"
import json, os, subprocess, sys, tempfile
import numpy as np
BIN, TL = os.environ["BIN"] + "/minnow", os.environ["TL"]
def logits(toks, dev):
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([BIN, "score", "-m", TL, "--tokens", ",".join(map(str, toks)), "--top", "2", "--dump", d,
                            "--device", dev], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return np.load(os.path.join(d, "logits.npy")).astype(np.float64)
def gen(prompt, dev, n=32):
    r = subprocess.run([BIN, "run", "-m", TL, "-p", prompt, "-n", str(n), "--temp", "0", "--json", "--device", dev],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])
ok = True
for prompt in ["The capital of France is", "Once upon a time, in a small village by the sea, there lived",
               "def fibonacci(n):\n    return"]:
    c = gen(prompt, "cpu")
    g = gen(prompt, "cuda")
    toks = c["prompt_tokens"] + c["tokens"]
    lc, lg = logits(toks, "cpu"), logits(toks, "cuda")
    kls, mism = [], 0
    for i in range(len(toks)):
        ids = np.argsort(-lc[i])[:40]
        p = np.exp(lc[i, ids] - lc[i, ids].max()); p /= p.sum()
        q = np.exp(lg[i, ids] - lg[i, ids].max()); q /= q.sum()
        kls.append(float(np.sum(p * (np.log(p) - np.log(q)))))
        s = np.sort(lc[i])[::-1]
        if s[0] - s[1] > 0.5 and np.argmax(lg[i]) != ids[0]: mism += 1
    kls = np.array(kls)
    k = 0
    while k < len(c["tokens"]) and k < len(g["tokens"]) and c["tokens"][k] == g["tokens"][k]: k += 1
    gap_ok = True
    if k < len(c["tokens"]):
        row = lc[len(c["prompt_tokens"]) - 1 + k]; s = np.sort(row)[::-1]
        gap_ok = (s[0] - s[1]) < 0.5
    good = kls.mean() <= 0.01 and kls.max() <= 0.05 and mism == 0 and gap_ok
    ok &= good
    print(f"TL GPU vs CPU {prompt[:24]!r}: {len(toks)} pos, mean KL {kls.mean():.2e}, max KL {kls.max():.2e}, "
          f"argmax mismatches {mism}, greedy equal {k}/{len(c['tokens'])} (divergence at a small gap: {gap_ok}) -> "
          f"{'OK' if good else 'FAIL'}")
print("TL GPU vs CPU:", "OK" if ok else "FAIL")
PY
  note "$(tail -1 "$OUT/compare.log")"
fi
if [ -f $TL ]; then

  # ---- 4b. bitwise batch invariance of the decode path (batches 1-32), every small model + TinyLlama-shaped --
  MINNOW_BIN=$BIN/minnow MINNOW_SHARED_DIR=$SHARED MINNOW_TL_MODEL=$TL timeout 400 python3 -m pytest -q -s \
    tests/py/test_cuda_batch_invariance.py -p no:cacheprovider > "$OUT/invariance.log" 2>&1
  rc=$?
  grep -E "max \|diff\||passed|failed|skipped|Error|assert" "$OUT/invariance.log" | head -30
  note "batch invariance (tests/py/test_cuda_batch_invariance.py, small models + TinyLlama-shaped): rc=$rc: $(tail -1 "$OUT/invariance.log")"

  # ---- 4c. settings that must not change a result: whole-model logits bitwise equal to the default's ---------
  # GPU_CHECK_BINS: other builds carried in .carry/bin (e.g. the commit before a change), compared the same way
  if [ -n "${GPU_CHECK_BITWISE:-}${GPU_CHECK_BINS:-}" ]; then
    toks=$(python3 -c "print(','.join(str((i * 7919) % 32000) for i in range(1, 25)))")
    "$BIN/minnow" score --device cuda -m $TL --tokens "$toks" --dump /tmp/bw_default > /dev/null 2>&1
    for ab in ${GPU_CHECK_BITWISE:-} ${GPU_CHECK_BINS:-}; do
      exe=$BIN/minnow
      [ -x "$BIN/$ab" ] && { exe=$BIN/$ab; ab_env=MINNOW_NOTHING=1; } || ab_env=$ab
      env ${ab_env//,/ } "$exe" score --device cuda -m $TL --tokens "$toks" --dump "/tmp/bw_$ab" > /dev/null 2>&1
      note "bitwise [$ab]: $(python3 -c "import numpy as np,sys; a=np.load('/tmp/bw_default/logits.npy'); b=np.load(sys.argv[1]+'/logits.npy'); print('equal' if a.shape==b.shape and (a.view(np.uint32)==b.view(np.uint32)).all() else 'DIFFERENT max %g' % abs(a-b).max())" "/tmp/bw_$ab")"
    done
  fi
  if [ "${GPU_CHECK_KTRACE:-0}" = 1 ]; then  # in-graph kernel timeline of the per-op decode graphs, per depth
    for d in 0 2048; do
      echo "-- kernel trace, tg128 @ depth $d"
      MINNOW_CUDA_TRACE=1 timeout 120 "$BIN/minnow" bench --device cuda -m $TL -p 0 -n 128 -d $d -r 3 2>&1 >/dev/null |
        grep "cuda trace"
    done
  fi
  # ---- 5. speed ---------------------------------------------------------------------------------------------
  timeout 240 "$BIN/minnow" bench --device cuda -m $TL -p 512 -n 128 -d 0,2048 -r 5 -o json > "$OUT/bench.json" 2> "$OUT/bench.err"
  tail -3 "$OUT/bench.err"
  python3 - "$OUT/bench.json" <<'PY' | tee "$OUT/bench.txt"
import json, sys
rows = json.load(open(sys.argv[1]))
print("| test | t/s (mean ± sd) | ms/token | weights GB/s | % of 3.04 TB/s |")
print("| --- | ---: | ---: | ---: | ---: |")
for r in rows:
    name = (f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}") + (f" @ d{r['n_depth']}" if r["n_depth"] else "")
    gbs = r["avg_ts"] * r.get("weight_bytes_per_token", 0) / 1e9 if r["n_gen"] else 0
    print(f"| {name} | {r['avg_ts']:.0f} ± {r['stddev_ts']:.0f} | {1000 / r['avg_ts']:.3f} | "
          + (f"{gbs:.0f} | {100 * gbs / 3040:.1f}% |" if r["n_gen"] else "- | - |"))
PY
  # ---- 5b. the same decode tests with older paths selected by env (A/B in the same call) -------------------
  for ab in ${GPU_CHECK_AB:-} ${GPU_CHECK_BINS:-}; do
    tag=$(printf '%s' "$ab" | tr -c 'A-Za-z0-9._-' '_')  # file names the device tool brings back
    exe=$BIN/minnow
    [ -x "$BIN/$ab" ] && { exe=$BIN/$ab; ab_env=MINNOW_NOTHING=1; } || ab_env=$ab
    pp=0; [ -x "$BIN/$ab" ] && pp=512  # other builds: the prompt test too
    env ${ab_env//,/ } timeout 120 "$exe" bench --device cuda -m $TL -p $pp -n 128 -d 0,2048 -r 5 -o json \
      > "$OUT/bench_$tag.json" 2> "$OUT/bench_$tag.err"
    grep "cuda profile\|cuda trace" "$OUT/bench_$tag.err" | head -12
    python3 - "$OUT/bench_$tag.json" "$ab" <<'PY' | tee -a "$OUT/bench.txt"
import json, sys
for r in json.load(open(sys.argv[1])):
    name = (f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}") + (f" @ d{r['n_depth']}" if r["n_depth"] else "") + f" [{sys.argv[2]}]"
    gbs = r["avg_ts"] * r.get("weight_bytes_per_token", 0) / 1e9 if r["n_gen"] else 0
    print(f"| {name} | {r['avg_ts']:.0f} ± {r['stddev_ts']:.0f} | {1000 / r['avg_ts']:.3f} | {gbs:.0f} | {100 * gbs / 3040:.1f}% |")
PY
  done
  # and the default path once more (spread between runs of the same code)
  timeout 120 "$BIN/minnow" bench --device cuda -m $TL -p 0 -n 128 -d 0,2048 -r 5 -o json > "$OUT/bench_again.json" 2>/dev/null
  python3 - "$OUT/bench_again.json" <<'PY' | tee -a "$OUT/bench.txt"
import json, sys
for r in json.load(open(sys.argv[1])):
    name = f"tg{r['n_gen']}" + (f" @ d{r['n_depth']}" if r["n_depth"] else "") + " [default, again]"
    gbs = r["avg_ts"] * r.get("weight_bytes_per_token", 0) / 1e9
    print(f"| {name} | {r['avg_ts']:.0f} ± {r['stddev_ts']:.0f} | {1000 / r['avg_ts']:.3f} | {gbs:.0f} | {100 * gbs / 3040:.1f}% |")
PY
  # ---- 6. server load (issue 6): 32 clients with batch invariance checked on all 32, then 128 clients ---------
  if [ "${GPU_CHECK_SERVER:-1}" != 0 ]; then
    # GPU_CHECK_SERVER_SPECS: "clients alone-checks env;..." (env "-": none)
    IFS=';' read -ra specs <<< "${GPU_CHECK_SERVER_SPECS:-32 32 -;128 4 -;128 4 MINNOW_CUDA_F16W=auto}"
    for spec in "${specs[@]}"; do
      set -- $spec
      env $(printf "%s" "${3/#-/MINNOW_NOTHING=1}" | tr "," " ") MINNOW_BIN=$BIN/minnow timeout 240 python3 tests/py/server_bench.py --model $TL \
        --device cuda --parallel "$1" --ctx 512 --clients "$1" --prompt-tokens 128 --gen-tokens 128 --alone "$2" \
        > "$OUT/server_$1_$(printf '%s' "$3" | tr -c 'A-Za-z0-9._-' '_').log" 2>&1
      log="$OUT/server_$1_$(printf '%s' "$3" | tr -c 'A-Za-z0-9._-' '_').log"
      grep -E "clients x|single client|latency|scheduler|invariance|first error|slots busy|cuda profile" "$log"
      note "server $1 clients [$3]: $(grep -E "clients x" "$log" | sed 's/.*errors; //') | $(grep invariance "$log")"
    done
    set --
  fi
fi
echo
echo "==== summary ($(head -2 "$OUT/gpu.txt" | tail -1))"
printf '%s\n' "${summary[@]}"
[ -f "$OUT/bench.txt" ] && cat "$OUT/bench.txt"
exit 0
