"""`minnow perplexity` (llama-perplexity's method): agrees with an independent numpy computation from
`minnow score` logits on the same chunks, and gives a finite, plausible figure for SmolLM2 on GPL-3."""
import math
import os
import re
import subprocess
import tempfile

import numpy as np
import pytest

BIN = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = os.environ.get("MINNOW_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
TINY = os.path.join(SHARED, "models/tiny-llama-q4km.gguf")
CACHE = os.environ.get("MINNOW_MODEL_CACHE", os.path.expanduser("~/.cache/minnow"))
SMOL = os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")
GPL3 = "/usr/share/common-licenses/GPL-3"
FINAL = re.compile(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)")


def need(*paths):
    for p in paths:
        if not os.path.exists(p):
            pytest.skip(f"{p} not found")


def perplexity(model, ctx, chunks, text=GPL3):
    r = subprocess.run([BIN, "perplexity", "-m", model, "-f", text, "-c", str(ctx), "--chunks", str(chunks), "-t", "2"],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr
    m = FINAL.search(r.stdout)
    assert m, r.stdout
    running = [float(x) for x in re.findall(r"\[\d+\]([0-9.]+),", r.stdout)]
    return float(m.group(1)), float(m.group(2)), running


def test_matches_independent_computation():
    need(TINY, GPL3)
    ctx, chunks = 48, 3
    ppl, err, running = perplexity(TINY, ctx, chunks)
    assert len(running) == chunks and abs(running[-1] - ppl) < 1e-3
    # Independent: tokenize the file, rebuild each chunk (BOS first, since this model adds BOS), score it
    # teacher-forced, and take the NLL of the second half's next tokens.
    r = subprocess.run([BIN, "tokenize", "-m", TINY, "-f", GPL3], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    toks = [int(t) for t in r.stdout.split()]
    assert toks[0] == 1
    nll = []
    for c in range(chunks):
        chunk = toks[c * ctx:(c + 1) * ctx]
        chunk[0] = 1
        with tempfile.TemporaryDirectory() as d:
            s = subprocess.run([BIN, "score", "-m", TINY, "--tokens", ",".join(map(str, chunk)), "--top", "1",
                                "--dump", d], capture_output=True, text=True, timeout=600)
            assert s.returncode == 0, s.stderr
            logits = np.load(os.path.join(d, "logits.npy")).astype(np.float64)
        for i in range(ctx // 2, ctx - 1):
            row = logits[i]
            lse = row.max() + math.log(np.exp(row - row.max()).sum())
            nll.append(lse - row[toks[c * ctx + i + 1]])
    nll = np.array(nll)
    expect = math.exp(nll.mean())
    sd = math.sqrt(((nll ** 2).mean() - nll.mean() ** 2) / (len(nll) - 1)) * expect
    print(f"tiny model, c={ctx}, {chunks} chunks: minnow PPL = {ppl:.4f} +/- {err:.5f}, numpy = {expect:.4f} +/- {sd:.5f}")
    assert abs(ppl - expect) / expect < 1e-3
    assert abs(err - sd) / sd < 1e-2


def test_too_short_text_is_an_error():
    need(TINY)
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write("just a few words")
        f.flush()
        r = subprocess.run([BIN, "perplexity", "-m", TINY, "-f", f.name, "-c", "64"], capture_output=True, text=True)
    assert r.returncode == 1 and "error: " in r.stderr and "tokens" in r.stderr


def test_smollm2_gpl3_prefix_is_plausible():
    need(SMOL, GPL3)
    chunks = int(os.environ.get("MINNOW_PPL_CHUNKS", "2"))
    ppl, err, running = perplexity(SMOL, 512, chunks)
    print(f"SmolLM2-135M-Instruct Q4_1, GPL-3, c=512, first {chunks} chunks: PPL = {ppl:.4f} +/- {err:.4f}")
    assert math.isfinite(ppl) and 2.0 < ppl < 40.0
    assert all(math.isfinite(x) for x in running)
