#!/usr/bin/env python3
"""Mutation harness: applies one-line mutations to core code, one at a time, rebuilds what each needs in its own
build directory (build-mutate, ccache), runs the tests that should catch it, restores the file, and prints
"N/M mutations caught", naming every survivor. Outside CI (minutes of rebuilds); see README "Mutation testing".

Each mutation is an exact-string replacement that must match exactly once: if another change moved or rewrote
the target line, the mutation is reported "not applicable" (and counted as not caught) instead of silently
passing. A mutation that no longer compiles is reported as such (also not caught: fix the mutation).

  python3 scripts/mutate.py            # all mutations
  python3 scripts/mutate.py --list     # names, files, and whether each still applies (no build)
  python3 scripts/mutate.py NAME ...   # only these
"""
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(ROOT, os.environ.get("MINNOW_MUTATE_BUILD", "build-mutate"))
SHARED = os.path.abspath(os.environ.get("MINNOW_SHARED_DIR", os.path.join(ROOT, "..", "shared")))
CACHE = os.environ.get("MINNOW_MODEL_CACHE", os.path.expanduser("~/.cache/minnow"))


def gt(exe, flt):
    """A gtest executable of the mutation build, filtered."""
    return f"{BUILD}/bin/{exe} --gtest_filter='{flt}' --gtest_brief=1"


def py(file, k=None):
    """A pytest file (as ctest runs it, with -x), optionally narrowed with -k."""
    return f"python3 -m pytest -q -x -p no:cacheprovider tests/py/{file}" + (f" -k '{k}'" if k else "")


GOLDEN_KL = py("test_golden.py", "test_golden_kl")
GREEDY_RUN = py("test_golden.py", "test_golden_greedy_run")

# name, file, exact old text, new text, cmake targets to rebuild, test commands (caught if any fails)
MUTATIONS = [
    # --- the five of issue 20's table ---
    ("server_top_p_greedy", "src/server/token_sampler.cpp",
     "double keep_mass = p_.top_p * sum, acc = 0;", "double keep_mass = 0 * p_.top_p * sum, acc = 0;",
     ["test_sample_dist"], [gt("test_sample_dist", "SampleDist.Server*")]),
    ("run_decode_pos_stuck", "app/cmd_run.cpp",
     "    pos += pos_step;\n", "    pos += 0 * pos_step;\n",
     ["minnow"], [GREEDY_RUN, py("test_run.py", "smollm2")]),
    ("cli_top_p_off_by_one", "src/sample/sampler.cpp",
     "        last = i + 1;\n", "        last = i;\n",
     ["test_sample_dist"], [gt("test_sample_dist", "SampleDist.Cli*")]),
    ("attention_scale_1_over_head_dim", "src/model/model_params.cpp",
     "p.features.attn_scale = 1.0 / std::sqrt(static_cast<double>(p.head_dim_k));",
     "p.features.attn_scale = 1.0 / static_cast<double>(p.head_dim_k);",
     ["minnow"], [py("test_attention_dump.py"), GOLDEN_KL]),
    ("run_kv_recomputed_each_step", "app/cmd_run.cpp",
     "    b.add(id, pos, 0, true);\n",
     "    for (int32_t i = 0; i < pos; ++i) { b.add(i < static_cast<int32_t>(ptoks.size()) ? ptoks[static_cast<size_t>(i)]"
     " : out[static_cast<size_t>(i) - ptoks.size()], i, 0, false); } b.add(id, pos, 0, true);\n",
     ["minnow"], [GREEDY_RUN, py("test_run.py", "smollm2")]),
    # --- norms, RoPE, attention, GQA, FFN ---
    ("rmsnorm_sum_not_mean", "src/backend/cpu/ops.cpp",
     "std::sqrt(ss / static_cast<double>(n) + eps)", "std::sqrt(ss + eps)",
     ["test_ops", "minnow"], [gt("test_ops", "Ops.RmsNorm*"), GOLDEN_KL]),
    ("rope_theta_exponent", "src/backend/cpu/ops.cpp",
     "std::pow(freq_base, -2.0 * static_cast<double>(i)", "std::pow(freq_base, -1.0 * static_cast<double>(i)",
     ["test_ops", "minnow"], [gt("test_ops", "Ops.Rope*"), GOLDEN_KL]),
    ("rope_rotation_sign", "src/backend/cpu/ops.cpp",
     "      v[b] = x0 * s + x1 * c;\n", "      v[b] = x0 * s - x1 * c;\n",
     ["test_ops", "minnow"], [gt("test_ops", "Ops.Rope*"), GOLDEN_KL]),
    ("gqa_head_mapping", "src/backend/cpu/cpu_backend.cpp",
     "const int64_t t = task / nh, h = task % nh;\n          const int64_t kvh = gqa_wrong ? h % nkv : h / group;",
     "const int64_t t = task / nh, h = task % nh;\n          const int64_t kvh = gqa_wrong ? h % nkv : (h / group + 1) % nkv;",
     ["minnow"], [py("test_attention_dump.py"), GOLDEN_KL]),
    ("attention_softmax_denominator", "src/backend/cpu/ops.cpp",
     "const float inv = static_cast<float>(1.0 / sum);", "const float inv = static_cast<float>(1.0 / (sum + 1.0));",
     ["test_ops", "minnow"], [gt("test_ops", "Ops.*"), GOLDEN_KL]),
    ("swiglu_without_silu", "src/backend/cpu/ops.cpp",
     "out[i] = g / (1.0f + std::exp(-g)) * up[i];", "out[i] = g * up[i];",
     ["test_ops", "minnow"], [gt("test_ops", "Ops.Swiglu*"), GOLDEN_KL]),
    # --- quantized dot products: the scalar reference and the x86 SIMD kernel ---
    ("q4k_ref_min_sign", "src/quant/dequant_k.cpp",
     "y[64 * c + l] = p.d1 * static_cast<float>(b.qs[32 * c + l] & 0xF) - p.m1;",
     "y[64 * c + l] = p.d1 * static_cast<float>(b.qs[32 * c + l] & 0xF) + p.m1;",
     ["test_quant_ref"], [gt("test_quant_ref", "QuantRef.*")]),
    ("q4k_simd_gemv_min_sign", "src/quant/simd/qdot_x86.inc",
     "acc = canon_step(acc, -half_to_float(blocks[b].dmin), dx, sx);",
     "acc = canon_step(acc, half_to_float(blocks[b].dmin), dx, sx);",
     ["test_simd_matmul"], [gt("test_simd_matmul", "*")]),
    # --- KV cache ---
    ("kv_cache_slots_share_rows", "src/backend/cpu/kv_cache.h",
     "return static_cast<size_t>(first_row_[static_cast<size_t>(l)] + seq * c + pos % c);",
     "return static_cast<size_t>(first_row_[static_cast<size_t>(l)] + 0 * seq * c + pos % c);",
     ["test_model"], [gt("test_model", "Backend.*")]),
    # --- tokenizer merges ---
    ("bpe_highest_rank_first", "src/tokenizer/bpe.cpp",
     "return rank < 0 ? std::nullopt : std::optional<double>(-double(rank));",
     "return rank < 0 ? std::nullopt : std::optional<double>(double(rank));",
     ["test_tokenizer"], [gt("test_tokenizer", "SmolLM2.*:VocabVectors*")]),
    ("spm_lowest_score_first", "src/tokenizer/spm.cpp",
     "return id < 0 ? std::nullopt : std::optional<double>(v.score[id]);",
     "return id < 0 ? std::nullopt : std::optional<double>(-v.score[id]);",
     ["test_tokenizer"], [gt("test_tokenizer", "Tokenizer.GoldenPromptsTinyLlama:Tokenizer.SpmMerge*")]),
    # --- samplers (CLI chain and server) ---
    ("cli_min_p_threshold", "src/sample/sampler.cpp",
     "static_cast<float>(std::log(p_.min_p));", "static_cast<float>(std::log(2 * p_.min_p));",
     ["test_sample_dist"], [gt("test_sample_dist", "SampleDist.Cli*")]),
    ("cli_temperature_inverted", "src/sample/sampler.cpp",
     "c.first = static_cast<float>(c.first / p_.temp);", "c.first = static_cast<float>(c.first * p_.temp);",
     ["test_sample_dist"], [gt("test_sample_dist", "SampleDist.Cli*")]),
    ("cli_repeat_penalty_swapped", "src/sample/sampler.cpp",
     "l = l <= 0 ? static_cast<float>(l * penalty) : static_cast<float>(l / penalty);",
     "l = l <= 0 ? static_cast<float>(l / penalty) : static_cast<float>(l / penalty);",
     ["test_sample_dist"], [gt("test_sample_dist", "SampleDist.Cli*")]),
    ("server_temperature_ignored", "src/server/token_sampler.cpp",
     "double inv_t = 1.0 / p_.temperature, sum = 0;", "double inv_t = 1.0 + 0 * p_.temperature, sum = 0;",
     ["test_sample_dist"], [gt("test_sample_dist", "SampleDist.Server*")]),
    # --- scheduler ---
    ("scheduler_decode_pos_stuck", "src/server/scheduler.cpp",
     "if (a.decoding) a.n_past += 1;", "if (a.decoding) a.n_past += 0;",
     ["test_scheduler"], [gt("test_scheduler", "Scheduler.*")]),
    # --- Jinja ---
    ("jinja_loop_index_from_zero", "src/chat/jinja_interp.cpp",
     'put("index", Value::integer(static_cast<int64_t>(k + 1)));',
     'put("index", Value::integer(static_cast<int64_t>(k)));',
     ["test_jinja", "minnow"], [gt("test_jinja", "*"), py("test_jinja_features.py")]),
    ("jinja_equality_negated", "src/chat/jinja_interp.cpp",
     'if (op == "==") r = values_equal(left, right);', 'if (op == "==") r = !values_equal(left, right);',
     ["test_jinja", "minnow"], [gt("test_jinja", "*"), py("test_jinja_features.py")]),
]


def env():
    e = dict(os.environ)
    for k in ("MINNOW_DEBUG_BREAK", "MINNOW_CHECK_KV_REUSE", "MINNOW_SIMD", "MINNOW_TEST_DEVICE"):
        e.pop(k, None)
    e.update({"MINNOW_BIN": f"{BUILD}/bin/minnow", "MINNOW_BIN_DIR": f"{BUILD}/bin", "MINNOW_SHARED_DIR": SHARED,
              "MINNOW_MODEL_CACHE": CACHE, "MINNOW_SOURCE_DIR": ROOT, "CCACHE_BASEDIR": os.path.dirname(ROOT)})
    return e


def sh(cmd, log, timeout=1800):
    with open(log, "a") as f:
        f.write(f"\n$ {cmd}\n")
        f.flush()
        try:
            return subprocess.run(cmd, shell=True, cwd=ROOT, env=env(), stdout=f, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            f.write("timed out\n")
            return 124


def applicable(m):
    path = os.path.join(ROOT, m[1])
    if not os.path.exists(path):
        return f"{m[1]} not found"
    n = open(path).read().count(m[2])
    return None if n == 1 else f"target text found {n} times in {m[1]} (expected once)"


def build(targets, log):
    jobs = os.environ.get("MINNOW_MUTATE_JOBS", "2")
    return sh(f"cmake --build {BUILD} -j{jobs} --target {' '.join(targets)}", log)


def main(argv):
    names = [a for a in argv if not a.startswith("-")]
    chosen = [m for m in MUTATIONS if not names or m[0] in names]
    if names and len(chosen) != len(names):
        sys.exit(f"unknown mutation(s): {sorted(set(names) - {m[0] for m in MUTATIONS})}")
    if "--list" in argv:
        for m in chosen:
            print(f"{m[0]:34s} {m[1]:36s} {applicable(m) or 'applies'}")
        return 0
    os.makedirs(BUILD, exist_ok=True)
    log = os.path.join(BUILD, "mutate.log")
    open(log, "w").close()
    print(f"mutation harness: {len(chosen)} mutations, build dir {BUILD}, log {log}", flush=True)
    if sh(f"cmake -S . -B {BUILD} -DCMAKE_BUILD_TYPE=Release -DMINNOW_WERROR=ON "
          f"-DCMAKE_CXX_COMPILER_LAUNCHER=ccache", log) != 0:
        sys.exit("configure failed (see the log)")
    # Baseline: the unmutated code must build and pass every test the mutations use.
    targets = sorted({t for m in chosen for t in m[4]})
    if build(targets, log) != 0:
        sys.exit("baseline build failed (see the log)")
    for cmd in sorted({c for m in chosen for c in m[5]}):
        if sh(cmd, log) != 0:
            sys.exit(f"baseline test fails on unmutated code: {cmd} (see the log)")
    print("baseline: builds, every test passes", flush=True)
    results = []
    for m in chosen:
        name, rel, old, new, tgts, tests = m
        t0 = time.time()
        why = applicable(m)
        if why:
            results.append((name, "not applicable", why))
            print(f"  {name}: NOT APPLICABLE ({why})", flush=True)
            continue
        path = os.path.join(ROOT, rel)
        backup = path + ".mutate-orig"
        shutil.copy2(path, backup)
        try:
            src = open(path).read()
            with open(path, "w") as f:
                f.write(src.replace(old, new))
            with open(log, "a") as f:
                f.write(f"\n===== mutation {name}: {rel}\n- {old.strip()}\n+ {new.strip()}\n")
            if build(tgts, log) != 0:
                results.append((name, "does not compile", "fix the mutation"))
                print(f"  {name}: DOES NOT COMPILE (fix the mutation)", flush=True)
                continue
            caught_by = None
            for cmd in tests:
                if sh(cmd, log) != 0:
                    caught_by = cmd
                    break
            status = "caught" if caught_by else "survived"
            results.append((name, status, caught_by or ""))
            print(f"  {name}: {status.upper()}{' by ' + caught_by if caught_by else ''} ({time.time() - t0:.0f} s)",
                  flush=True)
        finally:
            shutil.move(backup, path)  # restores the content; the next build recompiles what changed
    build(targets, log)  # leave the mutation build matching the sources again
    caught = sum(1 for r in results if r[1] == "caught")
    print(f"\n{caught}/{len(results)} mutations caught")
    for name, status, why in results:
        if status != "caught":
            print(f"  NOT CAUGHT: {name} ({status}{': ' + why if why else ''})")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
