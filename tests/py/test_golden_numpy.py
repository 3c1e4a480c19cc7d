"""An independent float64 numpy implementation of the Llama forward pass (weights dequantized by PyPI's
`gguf`), compared with `minnow score` logits on SmolLM2-135M: tied output, GQA 9/3, head size 64, RoPE base
100000, byte-level BPE vocabulary — hyperparameters unlike the golden tiny model's."""
import os
import subprocess
import tempfile

import numpy as np
import pytest

BIN = os.environ.get("MINNOW_BIN", "build/bin/minnow")
CACHE = os.environ.get("MINNOW_MODEL_CACHE", os.path.expanduser("~/.cache/minnow"))
SMOL = os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")


def reference_logits(path, tokens):
    gguf = pytest.importorskip("gguf")
    r = gguf.GGUFReader(path)
    arch = str(r.fields["general.architecture"].contents())
    meta = lambda k, d=None: r.fields[f"{arch}.{k}"].contents() if f"{arch}.{k}" in r.fields else d
    n_layer, d = int(meta("block_count")), int(meta("embedding_length"))
    nh = int(meta("attention.head_count"))
    nkv = int(meta("attention.head_count_kv", nh))
    hd = d // nh
    n_rot = int(meta("rope.dimension_count", hd))
    base = float(meta("rope.freq_base", 10000.0))
    eps = float(meta("attention.layer_norm_rms_epsilon"))
    T = {t.name: t for t in r.tensors}

    def W(name):
        t = T[name]
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        return a.reshape(int(t.shape[1]), int(t.shape[0])) if len(t.shape) == 2 else a.reshape(-1)

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(x, n_heads):  # x [n, n_heads*hd]; adjacent pairs (llama.cpp "normal" mode)
        x = x.reshape(len(tokens), n_heads, hd).copy()
        pos = np.arange(len(tokens))[:, None]
        theta = pos * base ** (-2.0 * np.arange(n_rot // 2) / n_rot)[None, :]
        c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        a, b = x[:, :, 0:n_rot:2].copy(), x[:, :, 1:n_rot:2].copy()
        x[:, :, 0:n_rot:2] = a * c - b * s
        x[:, :, 1:n_rot:2] = a * s + b * c
        return x

    emb = W("token_embd.weight")
    x = emb[tokens]
    n = len(tokens)
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for l in range(n_layer):
        p = f"blk.{l}."
        h = rms(x, W(p + "attn_norm.weight"))
        q = rope(h @ W(p + "attn_q.weight").T, nh)
        k = rope(h @ W(p + "attn_k.weight").T, nkv)
        v = (h @ W(p + "attn_v.weight").T).reshape(n, nkv, hd)
        out = np.zeros((n, nh, hd))
        for hh in range(nh):
            g = hh // (nh // nkv)
            s = q[:, hh, :] @ k[:, g, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ v[:, g, :]
        x = x + out.reshape(n, nh * hd) @ W(p + "attn_output.weight").T
        h = rms(x, W(p + "ffn_norm.weight"))
        gt, up = h @ W(p + "ffn_gate.weight").T, h @ W(p + "ffn_up.weight").T
        x = x + (gt / (1 + np.exp(-gt)) * up) @ W(p + "ffn_down.weight").T
    x = rms(x, W("output_norm.weight"))
    out_w = W("output.weight") if "output.weight" in T else emb
    return x @ out_w.T


def test_smollm2_matches_float64_reference():
    if not os.path.exists(SMOL):
        pytest.skip("SmolLM2 not found")
    tokens = [504, 3575, 282, 4649, 314, 7042, 30, 198, 1344, 253]
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run([BIN, "score", "-m", SMOL, "--tokens", ",".join(map(str, tokens)), "--top", "1", "--dump", d,
                            "-t", "2"], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        ours = np.load(os.path.join(d, "logits.npy")).astype(np.float64)
    ref = reference_logits(SMOL, tokens)
    kls = []
    for i in range(len(tokens)):
        p = np.exp(ref[i] - ref[i].max())
        p /= p.sum()
        lq = ours[i] - ours[i].max()
        lq -= np.log(np.exp(lq).sum())
        kls.append(float(np.sum(p * (np.log(p) - lq))))
        top2 = np.sort(ref[i])[-2:]
        if top2[1] - top2[0] > 0.5:
            assert int(np.argmax(ours[i])) == int(np.argmax(ref[i])), i
    kls = np.array(kls)
    print(f"SmolLM2 vs float64 numpy: mean KL = {kls.mean():.5f}, max KL = {kls.max():.5f}, "
          f"max |logit diff| = {np.abs(ours - ref).max():.4f}")
    assert kls.mean() <= 0.01 and kls.max() <= 0.05
