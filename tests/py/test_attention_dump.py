"""The CPU backend's own attention, GQA head mapping and scale included, against an independent float64 numpy
reference: `minnow score --dump` writes the roped queries, keys, values and the attention result (kqv) of every
layer; here query head h reads KV head h // (n_head / n_head_kv), scores are scaled by 1/sqrt(head_dim), and
the cache holds f16. Run on the tiny golden model and on SmolLM2 (GQA 9/3), head counts read from their metadata."""
import json
import os
import subprocess
import tempfile

import numpy as np
import pytest

BIN = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = os.environ.get("MINNOW_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
CACHE = os.environ.get("MINNOW_MODEL_CACHE", os.path.expanduser("~/.cache/minnow"))
MODELS = {"tiny": os.path.join(SHARED, "models/tiny-llama-q4km.gguf"),
          "smollm2": os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")}
TOKENS = [1, 15043, 3186, 338, 263, 1243, 310, 278, 11837, 29892, 322]


def heads(model):
    r = subprocess.run([BIN, "info", "-m", model, "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    meta = {m["key"]: m["value"] for m in json.loads(r.stdout)["metadata"]}
    arch = meta["general.architecture"]
    nh = int(meta[f"{arch}.attention.head_count"])
    return nh, int(meta.get(f"{arch}.attention.head_count_kv", nh))


def reference_kqv(q, k, v, nh, nkv, gqa=lambda h, nh, nkv: h // (nh // nkv), scale=None):
    n, qd = q.shape
    hd = qd // nh
    scale = 1 / np.sqrt(hd) if scale is None else scale
    k = k.astype(np.float16).astype(np.float64).reshape(n, nkv, hd)
    v = v.astype(np.float16).astype(np.float64).reshape(n, nkv, hd)
    q = q.astype(np.float64).reshape(n, nh, hd)
    out = np.zeros((n, nh, hd))
    for t in range(n):
        for h in range(nh):
            kh = gqa(h, nh, nkv)
            s = k[:t + 1, kh] @ q[t, h] * scale
            p = np.exp(s - s.max())
            out[t, h] = (p / p.sum()) @ v[:t + 1, kh]
    return out.reshape(n, qd)


@pytest.mark.parametrize("name", ["tiny", "smollm2"])
def test_backend_attention_matches_independent_reference(name):
    model = MODELS[name]
    if not os.path.exists(model):
        pytest.fail(f"{model} not found (scripts/fetch_model.sh, ../shared)")
    nh, nkv = heads(model)
    assert nkv < nh, "the check needs a GQA model"
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([BIN, "score", "-m", model, "--tokens", ",".join(map(str, TOKENS)), "--dump", d,
                            "-t", "2", "--device", "cpu"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        for layer in (0, 1):
            q, k, v, kqv = (np.load(os.path.join(d, f"{x}-{layer}.npy")).astype(np.float64)
                            for x in ("q", "k_rope", "v", "kqv"))
            ref = reference_kqv(q, k, v, nh, nkv)
            err = np.abs(kqv - ref).max() / np.abs(ref).max()
            # The reference must tell the right mapping and scale from the classic wrong ones.
            wrong_map = reference_kqv(q, k, v, nh, nkv, gqa=lambda h, nh, nkv: h % nkv)
            wrong_scale = reference_kqv(q, k, v, nh, nkv, scale=1.0 / (q.shape[1] // nh))
            e_map = np.abs(kqv - wrong_map).max() / np.abs(ref).max()
            e_scale = np.abs(kqv - wrong_scale).max() / np.abs(ref).max()
            print(f"{name} layer {layer}: GQA {nh}/{nkv}, rel err {err:.2e}; "
                  f"h % n_kv mapping {e_map:.2e}; 1/head_dim scale {e_scale:.2e}")
            assert err < 1e-4
            assert e_map > 50 * err and e_scale > 50 * err
