"""`minnow run` end to end: real-language smoke test on SmolLM2, --json layout, streaming text, seeding,
stop conditions, memory, and clean one-line errors for bad input."""
import json
import os
import subprocess

import pytest

BIN = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = os.environ.get("MINNOW_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
TINY = os.path.join(SHARED, "models/tiny-llama-q4km.gguf")
CACHE = os.environ.get("MINNOW_MODEL_CACHE", os.path.expanduser("~/.cache/minnow"))
SMOL = os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")


def run(*args, timeout=600):
    r = subprocess.run([BIN, *args], capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", errors="strict"), r.stderr.decode("utf-8", errors="replace")


def need(path):
    if not os.path.exists(path):
        pytest.fail(f"{path} not found (reference data and scripts/fetch_model.sh must have run)")


def parse_json_tail(stdout):
    lines = stdout.rstrip("\n").split("\n")
    return json.loads(lines[-1]), "\n".join(lines[:-1])


def run_env(args, env, timeout=600):
    e = dict(os.environ)
    e.pop("MINNOW_DEBUG_BREAK", None)
    e.pop("MINNOW_CHECK_KV_REUSE", None)
    e.update(env)
    r = subprocess.run([BIN, *args], capture_output=True, timeout=timeout, env=e)
    return r.returncode, r.stdout.decode("utf-8", errors="replace"), r.stderr.decode("utf-8", errors="replace")


def decode_failures(model, prompt, n, env=None):
    """Runs `minnow run --temp 0 --json` and checks its decode loop against `minnow score` (one batched
    teacher-forced pass over prompt + the generated tokens): every generated token must be the argmax wherever
    that argmax is firm (top-2 gap > 0.5). Returns (the run's JSON, stderr, a list of failures)."""
    import tempfile

    import numpy as np
    rc, out, err = run_env(["run", "-m", model, "-p", prompt, "-n", str(n), "--temp", "0", "--json", "-t", "2",
                            "--device", "cpu"], env or {})
    assert rc == 0, err
    j, _ = parse_json_tail(out)
    seq = j["prompt_tokens"] + j["tokens"][:-1]
    with tempfile.TemporaryDirectory() as d:
        rc, _, serr = run_env(["score", "-m", model, "--tokens", ",".join(map(str, seq)), "--top", "1",
                               "--dump", d, "-t", "2", "--device", "cpu"], {})
        assert rc == 0, serr
        logits = np.load(os.path.join(d, "logits.npy"))
    n_prompt = len(j["prompt_tokens"])
    fails, firm = [], 0
    for k, tok in enumerate(j["tokens"]):
        row = logits[n_prompt - 1 + k]
        top2 = np.sort(row)[-2:]
        if top2[1] - top2[0] > 0.5:
            firm += 1
            if int(np.argmax(row)) != tok:
                fails.append(f"step {k}: decoded {tok}, teacher-forced argmax {int(np.argmax(row))}")
    if firm < len(j["tokens"]) // 4:
        fails.append(f"only {firm} firm steps of {len(j['tokens'])}")
    return j, err, fails


def test_smollm2_capital_of_france():
    need(SMOL)
    j, err, fails = decode_failures(SMOL, "The capital of France is", 16, env={"MINNOW_CHECK_KV_REUSE": "1"})
    print("SmolLM2:", repr(j["text"]))
    assert len(j["tokens"]) == 16
    assert j["text"].lstrip().startswith("Paris"), j["text"]
    assert not fails, fails
    # Every position computed exactly once: prompt + 15 decode steps, no recomputed prefix.
    assert f"kv reuse check: {len(j['prompt_tokens']) + 15} tokens evaluated" in err, err
    assert "KV cache" in err and "tokens/s" in err and "load" in err


@pytest.mark.parametrize("bug", ["decode_stuck_pos", "ignore_kv"])
def test_negative_controls_fail_decode_check(bug):
    """The decode-loop check above must fail when the loop keeps one position or attention ignores the cache."""
    need(SMOL)
    _, _, fails = decode_failures(SMOL, "The capital of France is", 16, env={"MINNOW_DEBUG_BREAK": bug})
    print(bug, fails)
    assert fails, f"{bug} was not detected"


def test_recomputed_prefix_is_caught_by_the_kv_check():
    """MINNOW_CHECK_KV_REUSE rejects a decode loop that feeds a position twice (here the stuck position)."""
    need(TINY)
    rc, _, err = run_env(["run", "-m", TINY, "-p", "Hello", "-n", "4", "--temp", "0", "--device", "cpu"],
                         {"MINNOW_CHECK_KV_REUSE": "1", "MINNOW_DEBUG_BREAK": "decode_stuck_pos"})
    assert rc == 1 and "recomputed" in err, err


def test_json_layout_and_streamed_text():
    need(TINY)
    rc, out, err = run("run", "-m", TINY, "-p", "Hello world", "-n", "7", "--temp", "0", "--json", "-t", "2")
    assert rc == 0, err
    j, streamed = parse_json_tail(out)
    assert j["prompt_tokens"][0] == 1  # BOS from the metadata
    assert len(j["tokens"]) == 7
    assert streamed.rstrip("\n") == j["text"].rstrip("\n") or streamed == j["text"]
    t = j["timings"]
    for k in ("load_ms", "prompt_per_second", "predicted_per_second", "rss_mib", "kv_cache_mib"):
        assert k in t and t[k] >= 0
    # Resident memory grows by about the file plus the KV cache (plus buffers) over what the program and
    # its shared libraries (CUDA's, in a CUDA build) hold before loading.
    file_mib = os.path.getsize(TINY) / 2**20
    assert 0 < t["rss_start_mib"] <= t["rss_mib"]
    assert t["rss_mib"] - t["rss_start_mib"] < file_mib + t["kv_cache_mib"] + 150


def test_greedy_is_deterministic_and_seed_reproducible():
    need(TINY)
    outs = []
    for seed in ("7", "7", "8"):
        rc, out, err = run("run", "-m", TINY, "-p", "Once upon", "-n", "12", "--temp", "1.0", "--seed", seed,
                           "--json", "-t", "2")
        assert rc == 0, err
        outs.append(parse_json_tail(out)[0]["tokens"])
    assert outs[0] == outs[1]
    assert outs[2] != outs[0], "seeds 7 and 8 drew the same 12 tokens"
    g = [parse_json_tail(run("run", "-m", TINY, "-p", "Once upon", "-n", "6", "--temp", "0", "--json")[1])[0]["tokens"]
         for _ in range(2)]
    assert g[0] == g[1]


def test_stops_when_context_is_full():
    need(TINY)
    rc, out, err = run("run", "-m", TINY, "-p", "Hello", "-c", "12", "--temp", "0", "--json", "-t", "2")
    assert rc == 0, err
    j, _ = parse_json_tail(out)
    assert j["stop"] in ("context", "eog")
    assert len(j["prompt_tokens"]) + len(j["tokens"]) <= 13


def test_n_zero_generates_nothing():
    need(TINY)
    rc, out, err = run("run", "-m", TINY, "-p", "Hello", "-n", "0", "--json")
    assert rc == 0, err
    assert parse_json_tail(out)[0]["tokens"] == []


@pytest.mark.parametrize("args,needle", [
    (["run", "-p", "x"], "model"),
    (["run", "-m", "/nonexistent.gguf", "-p", "x"], ""),
    (["run", "-m", TINY], "prompt"),
    (["run", "-m", TINY, "-p", "x", "--device", "tpu"], "device"),
    (["run", "-m", TINY, "-p", "x", "-n", "-5"], "-n"),
    (["run", "-m", TINY, "-p", "x", "--temp", "abc"], "--temp"),
    (["run", "-m", TINY, "-p", "a b c d e f g h", "-c", "4"], "context"),
    (["run", "-m", TINY, "-p", "x", "--repeat-penalty", "0"], "penalty"),
    (["score", "-m", TINY, "--tokens", "1,2,99999"], "out of range"),
    (["score", "-m", TINY, "--tokens", "1,-3"], "out of range"),
    (["score", "-m", TINY, "--tokens", "1,x"], "--tokens"),
    (["score", "-m", TINY], "--tokens"),
    (["perplexity", "-m", TINY, "-f", "/nonexistent.txt"], "cannot open"),
])
def test_bad_input_is_a_clean_error(args, needle):
    need(TINY)
    rc, out, err = run(*args)
    assert rc == 1
    lines = [l for l in err.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, err
    assert needle in lines[0]


def test_cuda_without_support_is_a_clear_error():
    need(TINY)
    rc, _, err = run("run", "-m", TINY, "-p", "x", "--device", "cuda", "-n", "1")
    if rc == 0:
        pytest.skip("this build has a working CUDA backend")
    assert rc == 1 and "error: " in err and "cuda" in err.lower()


def test_score_dump_writes_every_intermediate():
    need(TINY)
    import tempfile

    import numpy as np
    with tempfile.TemporaryDirectory() as d:
        rc, out, err = run("score", "-m", TINY, "--tokens", "1,15043,3186", "--top", "3", "--dump", d)
        assert rc == 0, err
        names = set(os.listdir(d))
        for l in range(4):
            for n in ("attn_norm", "q", "k_rope", "v", "attn_out", "ffn_inp", "ffn_out", "l_out"):
                assert f"{n}-{l}.npy" in names, (n, l)
        for n in ("result_norm", "logits"):
            assert f"{n}.npy" in names
        logits = np.load(os.path.join(d, "logits.npy"))
        assert logits.shape == (3, 32000)
        assert np.load(os.path.join(d, "q-0.npy")).shape == (3, 256)
        assert np.load(os.path.join(d, "k_rope-0.npy")).shape == (3, 64)
        lines = [json.loads(l) for l in out.splitlines()]
        for i, l in enumerate(lines):
            assert [t[0] for t in l["top"]] == list(np.argsort(-logits[i], kind="stable")[:3])
            assert abs(l["top"][0][1] - logits[i].max()) < 1e-4
        # The residual stream adds up: l_out = ffn_inp + ffn_out.
        np.testing.assert_allclose(np.load(os.path.join(d, "l_out-2.npy")),
                                   np.load(os.path.join(d, "ffn_inp-2.npy")) + np.load(os.path.join(d, "ffn_out-2.npy")),
                                   rtol=1e-5, atol=1e-5)
