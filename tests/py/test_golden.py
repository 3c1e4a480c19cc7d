"""Golden acceptance against llama.cpp (shared/golden/tiny-llama-q4km.jsonl):

* teacher-forced `minnow score` distributions: mean KL(p||q) <= 0.01, max KL <= 0.05 per prompt, and the same
  argmax wherever llama.cpp's top-2 gap exceeds 0.5 (p = llama.cpp's softmax over its top 40, q = ours over
  the same ids, both renormalised);
* `minnow run --temp 0 --json` reproduces the prompt tokens, and the greedy tokens up to the first step
  whose golden top-2 gap is below 0.5; every decoded token equals the teacher-forced argmax of `minnow score`
  wherever that is firm; and no position is computed twice (MINNOW_CHECK_KV_REUSE);
* negative controls: each classic bug switched on through MINNOW_DEBUG_BREAK must FAIL the KL bounds, and the
  decode-loop bugs (decode_stuck_pos, ignore_kv) must fail the greedy-run check.
"""
import json
import os
import subprocess
import tempfile

import numpy as np
import pytest

BIN = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = os.environ.get("MINNOW_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
MODEL = os.path.join(SHARED, "models/tiny-llama-q4km.gguf")
GOLDEN = os.path.join(SHARED, "golden/tiny-llama-q4km.jsonl")

MEAN_KL, MAX_KL, GAP = 0.01, 0.05, 0.5


def golden(path=GOLDEN, model=MODEL):
    if not os.path.exists(path) or not os.path.exists(model):
        pytest.fail(f"shared golden data not found: {path}, {model} (reference data must be there; see ../shared/README.md)")
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def score_logits(tokens, env=None, device=None, model=MODEL):
    """Our full logits [n, n_vocab] for a teacher-forced sequence, via `minnow score --dump`.
    device: None = the binary's default (MINNOW_TEST_DEVICE overrides it)."""
    device = device or os.environ.get("MINNOW_TEST_DEVICE")
    with tempfile.TemporaryDirectory() as d:
        cmd = [BIN, "score", "-m", model, "--tokens", ",".join(map(str, tokens)), "--top", "5", "--dump", d, "-t", "2"]
        if device:
            cmd += ["--device", device]
        e = dict(os.environ)
        e.pop("MINNOW_DEBUG_BREAK", None)
        e.pop("MINNOW_ACT_BITS", None)
        if env:
            e.update(env)
        r = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=900)
        assert r.returncode == 0, r.stderr
        lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
        assert len(lines) == len(tokens)
        logits = np.load(os.path.join(d, "logits.npy")).astype(np.float64)
    assert logits.shape[0] == len(tokens)
    # The JSON lines agree with the dumped logits.
    for i, l in enumerate(lines):
        assert l["pos"] == i and l["token"] == tokens[i]
        assert l["top"][0][0] == int(np.argmax(logits[i]))
        lse = np.log(np.sum(np.exp(logits[i] - logits[i].max()))) + logits[i].max()
        assert abs(l["logsumexp"] - lse) < 1e-3
    return logits


def kl_figures(case, logits):
    """Per-position KL(p||q) over llama.cpp's top-40 ids, and argmax mismatches where the gap > 0.5."""
    kls, mismatches = [], []
    for i, pos in enumerate(case["positions"]):
        ids = np.array([t[0] for t in pos["top"]])
        ref = np.array([t[1] for t in pos["top"]], dtype=np.float64)
        p = np.exp(ref - ref.max())
        p /= p.sum()
        ours = logits[i, ids]
        q = np.exp(ours - ours.max())
        q /= q.sum()
        kls.append(float(np.sum(p * (np.log(p) - np.log(q)))))
        if ref[0] - ref[1] > GAP and int(np.argmax(logits[i])) != int(ids[0]):
            mismatches.append(i)
    return np.array(kls), mismatches


def case_tokens(case):
    # positions[i] describes the logits after token i of prompt + greedy continuation (the README says
    # greedy_tokens[:-1]; the file carries one entry per token of prompt + greedy_tokens: use what is there).
    return (case["prompt_tokens"] + case["greedy_tokens"])[:len(case["positions"])]


@pytest.mark.parametrize("idx", range(4))
def test_golden_kl(idx):
    cases = golden()
    if idx >= len(cases):
        pytest.skip("no such prompt")
    case = cases[idx]
    toks = case_tokens(case)
    assert len(case["positions"]) == len(toks)
    kls, mism = kl_figures(case, score_logits(toks))
    print(f"prompt {idx} {case['prompt'][:30]!r}: {len(toks)} positions, mean KL = {kls.mean():.5f}, "
          f"max KL = {kls.max():.5f}, argmax mismatches (gap > {GAP}) = {mism}")
    assert kls.mean() <= MEAN_KL
    assert kls.max() <= MAX_KL
    assert not mism


def test_golden_all_prompts_covered():
    # Every prompt in the file gets checked (the parametrisation above covers the first 4).
    assert len(golden()) <= 4, "add more indices to test_golden_kl"


def greedy_run(case, env=None):
    """`minnow run --temp 0 --json` on a golden prompt: (the JSON tail, stderr). MINNOW_CHECK_KV_REUSE and
    MINNOW_DEBUG_BREAK come only from `env`."""
    n = len(case["greedy_tokens"])
    e = dict(os.environ)
    e.pop("MINNOW_DEBUG_BREAK", None)
    e.pop("MINNOW_CHECK_KV_REUSE", None)
    e.update(env or {})
    cmd = [BIN, "run", "-m", MODEL, "-p", case["prompt"], "--temp", "0", "-n", str(n), "--json", "-t", "2"]
    if env and "MINNOW_DEBUG_BREAK" in env:
        cmd += ["--device", "cpu"]  # the switches live in the CPU backend and `run`
    r = subprocess.run(cmd, capture_output=True, timeout=900, env=e)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return json.loads(r.stdout.decode().strip().splitlines()[-1]), r.stderr.decode(errors="replace")


def greedy_run_failures(case, out, env=None):
    """What is wrong with a greedy run of a golden prompt (empty: nothing):
    * the prompt tokens differ from llama.cpp's;
    * free running: a token differs from llama.cpp's greedy token before the first step whose golden top-2 gap
      is under GAP, or the first difference after it falls at a step with a large golden gap;
    * teacher forced: `minnow score` over prompt + the generated tokens (one batched pass, itself checked against
      llama.cpp by test_golden_kl) has a firm argmax (its own top-2 gap > GAP) that the decode loop did not pick.
      This covers every generated token, past the first near-tie, so a wrong position or a lost KV cache in the
      decode loop shows even where the free-running comparison stops."""
    fails = []
    n = len(case["greedy_tokens"])
    if out["prompt_tokens"] != case["prompt_tokens"]:
        fails.append("prompt tokens differ")
    n_prompt = len(case["prompt_tokens"])
    gaps = [case["positions"][n_prompt - 1 + k]["top"][0][1] - case["positions"][n_prompt - 1 + k]["top"][1][1]
            for k in range(n)]
    first_small = next((k for k in range(n) if gaps[k] < GAP), n)
    ours = out["tokens"]
    if len(ours) != n:
        fails.append(f"{len(ours)} tokens generated, {n} asked for")
    k = 0
    while k < n and k < len(ours) and ours[k] == case["greedy_tokens"][k]:
        k += 1
    print(f"  {k} of {n} greedy tokens equal llama.cpp's (first small-gap step: {first_small})")
    if k < min(n, len(ours)) and gaps[k] >= GAP:
        fails.append(f"free running diverged at step {k} where llama.cpp's top-2 gap is {gaps[k]:.3f}")
    seq = out["prompt_tokens"] + ours
    logits = score_logits(seq[:-1] if ours else seq, env=env, device="cpu" if env else None)
    firm = wrong = 0
    for j, tok in enumerate(ours):
        row = logits[n_prompt - 1 + j]
        top2 = np.sort(row)[-2:]
        if top2[1] - top2[0] > GAP:
            firm += 1
            if int(np.argmax(row)) != tok:
                wrong += 1
    print(f"  teacher forced: {firm} firm steps of {len(ours)}, {wrong} decoded differently")
    if wrong:
        fails.append(f"{wrong} of {firm} firm teacher-forced argmaxes differ from the decoded tokens")
    if firm < len(ours) // 4:
        fails.append(f"only {firm} firm steps: the teacher-forced check has too little to compare")
    return fails


@pytest.mark.parametrize("idx", range(4))
def test_golden_greedy_run(idx):
    cases = golden()
    if idx >= len(cases):
        pytest.skip("no such prompt")
    case = cases[idx]
    # MINNOW_CHECK_KV_REUSE: the decode loop must compute every position once (no recomputed prefix).
    out, err = greedy_run(case, env={"MINNOW_CHECK_KV_REUSE": "1"})
    fails = greedy_run_failures(case, out)
    assert not fails, fails
    evaluated = len(out["prompt_tokens"]) + len(out["tokens"]) - 1
    assert f"kv reuse check: {evaluated} tokens evaluated" in err, err


@pytest.mark.parametrize("bug", ["decode_stuck_pos", "ignore_kv"])
def test_negative_controls_fail_greedy_run(bug):
    """A decode loop that keeps one position, or attention that ignores the KV cache, fails the greedy-run
    check on every prompt."""
    for idx, case in enumerate(golden()):
        out, _ = greedy_run(case, env={"MINNOW_DEBUG_BREAK": bug})
        fails = greedy_run_failures(case, out)
        print(f"{bug}: prompt {idx}: {fails}")
        assert fails, f"{bug} was not detected on prompt {idx}"


@pytest.mark.parametrize("bug", ["rope_fixed_pos", "layernorm", "gqa_order", "rope_halfsplit"])
def test_negative_controls_fail_bounds(bug):
    """Each classic bug must be caught: every prompt leaves the bounds. The switches live in the CPU
    backend's forward pass, so this always runs there."""
    cases = golden()
    for idx, case in enumerate(cases):
        toks = case_tokens(case)
        kls, mism = kl_figures(case, score_logits(toks, env={"MINNOW_DEBUG_BREAK": bug}, device="cpu"))
        ratio = max(kls.mean() / MEAN_KL, kls.max() / MAX_KL)
        print(f"{bug}: prompt {idx}: mean KL = {kls.mean():.4f}, max KL = {kls.max():.4f}, "
              f"mismatches = {len(mism)}, bound exceeded {ratio:.1f}x")
        assert ratio > 1.0 or mism, f"{bug} was not detected on prompt {idx}"


def cpu_has(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return any(flag in line.split() for line in f if line.startswith("flags"))
    except OSError:
        return False


@pytest.mark.parametrize("simd", ["scalar", "avx2", "avx512"])
def test_golden_kl_every_simd_path(simd):
    """The golden bounds hold on every CPU kernel path (MINNOW_SIMD), not only the one the host picks."""
    need = {"avx2": "avx2", "avx512": "avx512_vnni"}.get(simd)
    if need and not cpu_has(need):
        pytest.skip(f"this CPU has no {need}")
    for idx, case in enumerate(golden()):
        kls, mism = kl_figures(case, score_logits(case_tokens(case), env={"MINNOW_SIMD": simd}, device="cpu"))
        print(f"{simd}: prompt {idx}: mean KL = {kls.mean():.5f}, max KL = {kls.max():.5f}, mismatches = {mism}")
        assert kls.mean() <= MEAN_KL and kls.max() <= MAX_KL and not mism, f"{simd}: prompt {idx} out of bounds"


# The architectures' goldens: random-weight models of each architecture (../shared/README.md lists their
# quirks), scored teacher-forced from the golden's token ids (no tokenizer involved), same bounds.
ARCHS = ["llama3", "qwen2", "qwen3", "gemma3", "phi3"]


def arch_files(arch):
    return os.path.join(SHARED, f"golden/{arch}.jsonl"), os.path.join(SHARED, f"models/{arch}-tiny.gguf")


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_golden_kl(arch):
    path, model = arch_files(arch)
    for idx, case in enumerate(golden(path, model)):
        toks = case_tokens(case)
        kls, mism = kl_figures(case, score_logits(toks, model=model))
        print(f"{arch} prompt {idx}: {len(toks)} positions, mean KL = {kls.mean():.5f}, max KL = {kls.max():.5f}, "
              f"mismatches = {mism}")
        assert kls.mean() <= MEAN_KL and kls.max() <= MAX_KL and not mism, f"{arch}: prompt {idx} out of bounds"


@pytest.mark.parametrize("arch,bug", [("qwen2", "rope_halfsplit"), ("gemma3", "layernorm"), ("phi3", "gqa_order")])
def test_arch_negative_controls_fail_bounds(arch, bug):
    """The architecture goldens detect classic bugs too (here: adjacent pairs where the file wants NeoX)."""
    path, model = arch_files(arch)
    case = golden(path, model)[-1]  # the long prompt
    kls, mism = kl_figures(case, score_logits(case_tokens(case), env={"MINNOW_DEBUG_BREAK": bug}, device="cpu",
                                              model=model))
    ratio = max(kls.mean() / MEAN_KL, kls.max() / MAX_KL)
    print(f"{arch} {bug}: mean KL = {kls.mean():.4f}, max KL = {kls.max():.4f}, bound exceeded {ratio:.1f}x")
    assert ratio > 1.0 or mism
