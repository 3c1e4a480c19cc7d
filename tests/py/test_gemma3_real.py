"""The real Gemma 3 270M (Q4_K_M; `scripts/fetch_gemma.sh` caches it, scripts/test.sh fetches it) against
llama.cpp: the golden ../shared/golden/gemma3-270m.jsonl within the usual bounds (teacher-forced from its token
ids), greedy output equal up to the first near-tie, and perplexity on GPL-3 at -c 512 within 1% of
llama.cpp's 13.8920 (../shared/README.md)."""
import json
import os
import re
import subprocess

import pytest

from test_golden import GAP, MAX_KL, MEAN_KL, case_tokens, golden, kl_figures, score_logits

BIN = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = os.environ.get("MINNOW_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
CACHE = os.environ.get("MINNOW_MODEL_CACHE", os.path.expanduser("~/.cache/minnow"))
GEMMA = os.path.join(CACHE, "gemma-3-270m-q4_k_m.gguf")
GOLDEN = os.path.join(SHARED, "golden/gemma3-270m.jsonl")
GPL3 = "/usr/share/common-licenses/GPL-3"
LLAMA_CPP_PPL = 13.8920


def cases():
    return golden(GOLDEN, GEMMA)  # skips when the model or the golden is missing


def test_golden_kl():
    for idx, case in enumerate(cases()):
        toks = case_tokens(case)
        kls, mism = kl_figures(case, score_logits(toks, model=GEMMA))
        print(f"gemma3-270m prompt {idx}: {len(toks)} positions, mean KL = {kls.mean():.5f}, "
              f"max KL = {kls.max():.5f}, mismatches = {mism}")
        assert kls.mean() <= MEAN_KL and kls.max() <= MAX_KL and not mism


def test_greedy_equals_llama_cpp_up_to_first_near_tie():
    for idx, case in enumerate(cases()):
        n = len(case["greedy_tokens"])
        r = subprocess.run([BIN, "run", "-m", GEMMA, "-p", case["prompt"], "--temp", "0", "-n", str(n), "--json",
                            "-t", "2"], capture_output=True, timeout=900)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        out = json.loads(r.stdout.decode().strip().splitlines()[-1])
        assert out["prompt_tokens"] == case["prompt_tokens"], "tokenizer differs from llama.cpp"
        n_prompt = len(case["prompt_tokens"])
        gaps = [case["positions"][n_prompt - 1 + k]["top"][0][1] - case["positions"][n_prompt - 1 + k]["top"][1][1]
                for k in range(n)]
        first_small = next((k for k in range(n) if gaps[k] < GAP), n)
        print(f"prompt {idx}: first near-tie at step {first_small}; ours {out['tokens'][:first_small]}")
        assert out["tokens"][:first_small] == case["greedy_tokens"][:first_small]


def test_perplexity_gpl3_within_one_percent_of_llama_cpp():
    if not os.path.exists(GEMMA) or not os.path.exists(GPL3):
        pytest.skip("Gemma 3 270M or GPL-3 not found")
    r = subprocess.run([BIN, "perplexity", "-m", GEMMA, "-f", GPL3, "-c", "512", "-t", "2"], capture_output=True,
                       text=True, timeout=1700)
    assert r.returncode == 0, r.stderr
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", r.stdout)
    assert m, r.stdout
    ppl = float(m.group(1))
    print(f"Gemma 3 270M, GPL-3, c=512: minnow {ppl:.4f}, llama.cpp {LLAMA_CPP_PPL}")
    assert abs(ppl - LLAMA_CPP_PPL) / LLAMA_CPP_PPL < 0.01
