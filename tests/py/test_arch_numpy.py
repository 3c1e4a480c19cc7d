"""Whole-model test per architecture: random weights of that architecture (written by `synth_model`'s tiny
presets, every feature switched on, norms random so that a norm applied to the wrong thing shows) give
`minnow score` logits that match an independent float64 numpy forward pass (weights dequantized by PyPI's
`gguf`). The numpy code is written from the architectures' definitions (../shared/README.md), not from
minnow's: it is the "scalar reference" for whole models, in the habit of llama.cpp's test-llama-archs."""
import os
import subprocess
import tempfile

import numpy as np
import pytest

BIN = os.environ.get("MINNOW_BIN", "build/bin/minnow")
BIN_DIR = os.environ.get("MINNOW_BIN_DIR", os.path.dirname(BIN))
SHARED = os.environ.get("MINNOW_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
VOCAB = os.path.join(SHARED, "vocab/ggml-vocab-llama-spm.gguf")

# 40 tokens: past the tiny gemma3's window of 5, so its local layers mask.
TOKENS = [1] + [(7919 * i * i + 104729 * i + 13) % 31990 + 5 for i in range(39)]


def reference_logits(path, tokens, n_ctx=4096):
    """Float64 forward pass of any supported architecture, from the GGUF file alone (n_ctx: the context size
    the run uses, which picks phi3's long or short RoPE factors)."""
    gguf = pytest.importorskip("gguf")
    r = gguf.GGUFReader(path)
    arch = str(r.fields["general.architecture"].contents())
    meta = lambda k, d=None: r.fields[f"{arch}.{k}"].contents() if f"{arch}.{k}" in r.fields else d
    n_layer, d = int(meta("block_count")), int(meta("embedding_length"))
    nh = int(meta("attention.head_count"))
    nkv = int(meta("attention.head_count_kv", nh))
    hd = int(meta("attention.key_length", d // nh))
    n_rot = int(meta("rope.dimension_count", hd))
    base = float(meta("rope.freq_base", 10000.0))
    eps = float(meta("attention.layer_norm_rms_epsilon"))
    neox = arch in ("qwen2", "qwen3", "gemma3", "phi3")  # llama.cpp picks the RoPE type by architecture
    gemma = arch == "gemma3"
    window = int(meta("attention.sliding_window", 0)) if gemma else 0
    pattern = int(meta("attention.sliding_window_pattern", 6))
    base_swa = float(meta("rope.freq_base_swa", 10000.0))
    softcap = float(meta("final_logit_softcapping", 0.0)) if gemma else 0.0
    T = {t.name: t for t in r.tensors}

    def W(name):
        t = T[name]
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        return a.reshape(int(t.shape[1]), int(t.shape[0])) if len(t.shape) == 2 else a.reshape(-1)

    def opt(name):
        return W(name) if name in T else None

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    factors = opt("rope_freqs.weight")
    if "rope_factors_long.weight" in T:  # LongRoPE: long factors beyond the original context
        orig = int(meta("rope.scaling.original_context_length", meta("context_length")))
        factors = W("rope_factors_long.weight" if n_ctx > orig else "rope_factors_short.weight")
    factors = np.ones(n_rot // 2) if factors is None else factors
    mscale = float(meta("rope.scaling.attn_factor", 1.0))
    n = len(tokens)

    def rope(x, n_heads, b):  # x [n, n_heads*hd]
        x = x.reshape(n, n_heads, hd).copy()
        theta = np.arange(n)[:, None] * b ** (-2.0 * np.arange(n_rot // 2) / n_rot)[None, :] / factors[None, :]
        c, s = mscale * np.cos(theta)[:, None, :], mscale * np.sin(theta)[:, None, :]
        if neox:
            ia, ib = np.arange(n_rot // 2), np.arange(n_rot // 2) + n_rot // 2
        else:
            ia, ib = np.arange(0, n_rot, 2), np.arange(1, n_rot, 2)
        a, bb = x[:, :, ia].copy(), x[:, :, ib].copy()
        x[:, :, ia] = a * c - bb * s
        x[:, :, ib] = a * s + bb * c
        return x

    emb = W("token_embd.weight")
    x = emb[tokens] * (np.sqrt(d) if gemma else 1.0)
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    for l in range(n_layer):
        p = f"blk.{l}."
        local = window > 0 and (pattern == 0 or l % pattern < pattern - 1)
        b_l = base_swa if local else base
        visible = (j <= i) & ((i - j < window) if local else True)
        mask = np.where(visible, 0.0, -np.inf)
        h = rms(x, W(p + "attn_norm.weight"))
        if p + "attn_qkv.weight" in T:
            qkv = h @ W(p + "attn_qkv.weight").T
            q, k, v = qkv[:, :nh * hd], qkv[:, nh * hd:(nh + nkv) * hd], qkv[:, (nh + nkv) * hd:]
        else:
            q, k, v = (h @ W(p + f"attn_{t}.weight").T for t in "qkv")
            if p + "attn_q.bias" in T:
                q, k, v = q + W(p + "attn_q.bias"), k + W(p + "attn_k.bias"), v + W(p + "attn_v.bias")
        if p + "attn_q_norm.weight" in T:
            q = rms(q.reshape(n, nh, hd), W(p + "attn_q_norm.weight")).reshape(n, nh * hd)
            k = rms(k.reshape(n, nkv, hd), W(p + "attn_k_norm.weight")).reshape(n, nkv * hd)
        q, k, v = rope(q, nh, b_l), rope(k, nkv, b_l), v.reshape(n, nkv, hd)
        out = np.zeros((n, nh, hd))
        for hh in range(nh):
            g = hh // (nh // nkv)
            s = q[:, hh, :] @ k[:, g, :].T / np.sqrt(hd) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ v[:, g, :]
        o = out.reshape(n, nh * hd) @ W(p + "attn_output.weight").T
        if p + "attn_output.bias" in T:
            o = o + W(p + "attn_output.bias")
        if gemma:
            o = rms(o, W(p + "post_attention_norm.weight"))
        x = x + o
        h = rms(x, W(p + "ffn_norm.weight"))
        if p + "ffn_gate.weight" in T:
            gt, up = h @ W(p + "ffn_gate.weight").T, h @ W(p + "ffn_up.weight").T
        else:  # phi3: fused, gate rows first
            gu = h @ W(p + "ffn_up.weight").T
            gt, up = gu[:, :gu.shape[1] // 2], gu[:, gu.shape[1] // 2:]
        if gemma:
            act = 0.5 * gt * (1 + np.tanh(np.sqrt(2 / np.pi) * (gt + 0.044715 * gt ** 3)))
        else:
            act = gt / (1 + np.exp(-gt))
        f = (act * up) @ W(p + "ffn_down.weight").T
        if gemma:
            f = rms(f, W(p + "post_ffw_norm.weight"))
        x = x + f
    x = rms(x, W("output_norm.weight"))
    out_w = W("output.weight") if "output.weight" in T else emb  # tied: the unscaled embeddings
    logits = x @ out_w.T
    if softcap > 0:
        logits = softcap * np.tanh(logits / softcap)
    return logits


def minnow_logits(path, tokens, env=None, n_ctx=4096):
    with tempfile.TemporaryDirectory() as d:
        e = dict(os.environ)
        e.pop("MINNOW_DEBUG_BREAK", None)
        e.update(env or {})
        r = subprocess.run([BIN, "score", "-m", path, "--tokens", ",".join(map(str, tokens)), "--top", "1", "--dump",
                            d, "-t", "2", "--device", "cpu", "-c", str(n_ctx)], capture_output=True, text=True, timeout=600, env=e)
        assert r.returncode == 0, r.stderr
        return np.load(os.path.join(d, "logits.npy")).astype(np.float64)


def figures(ours, ref):
    """Mean and max KL(ref || ours) over the positions, and the largest logit error relative to the spread."""
    kls = []
    for i in range(len(ref)):
        lp = ref[i] - ref[i].max()
        lp -= np.log(np.exp(lp).sum())
        lq = ours[i] - ours[i].max()
        lq -= np.log(np.exp(lq).sum())
        kls.append(float(np.sum(np.exp(lp) * (lp - lq))))
    rel = float(np.abs(ours - ref).max() / ref.std())
    return np.array(kls), rel


PRESETS = ["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-gemma3", "tiny-phi3"]
EXTRA = {"tiny-llama": ["--llama3-rope"], "tiny-phi3": ["--longrope"]}


@pytest.fixture(scope="module")
def models():
    synth = os.path.join(BIN_DIR, "synth_model")
    if not os.path.exists(synth) or not os.path.exists(VOCAB):
        pytest.skip("synth_model or the llama-spm vocabulary not found")
    with tempfile.TemporaryDirectory() as d:
        paths = {}
        for preset in PRESETS:
            path = os.path.join(d, preset + ".gguf")
            cmd = [synth, "--preset", preset, "--vocab", VOCAB, "--type", "F32", "-o", path, "--weight-std", "0.2",
                   "--random-norms", "-t", "2", "--seed", "7"]
            cmd += EXTRA.get(preset, [])
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            paths[preset] = path
        yield paths


@pytest.mark.parametrize("preset", PRESETS)
def test_arch_matches_float64_reference(models, preset):
    ours, ref = minnow_logits(models[preset], TOKENS), reference_logits(models[preset], TOKENS)
    kls, rel = figures(ours, ref)
    print(f"{preset} vs float64 numpy: mean KL = {kls.mean():.2e}, max KL = {kls.max():.2e}, "
          f"max |logit diff| / logit std = {rel:.4f}")
    assert kls.max() <= 1e-4 and rel <= 0.03
    for i in range(len(TOKENS)):
        top2 = np.sort(ref[i])[-2:]
        if top2[1] - top2[0] > 0.1:
            assert int(np.argmax(ours[i])) == int(np.argmax(ref[i])), i


def test_phi3_longrope_short_and_long_factors(models):
    """Phi-3's LongRoPE: the short factors up to the original context (2048 here), the long ones beyond."""
    path = models["tiny-phi3"]
    for n_ctx in (1024, 4096):
        kls, rel = figures(minnow_logits(path, TOKENS, n_ctx=n_ctx), reference_logits(path, TOKENS, n_ctx))
        print(f"tiny-phi3 LongRoPE, n_ctx {n_ctx}: max KL = {kls.max():.2e}, max |logit diff| / std = {rel:.4f}")
        assert kls.max() <= 1e-4 and rel <= 0.03
    # The two factor sets give different logits, so the choice is tested.
    short, long_ = minnow_logits(path, TOKENS, n_ctx=1024), minnow_logits(path, TOKENS, n_ctx=4096)
    assert np.abs(short - long_).max() > 0.1


@pytest.mark.parametrize("preset,bug", [("tiny-qwen2", "rope_halfsplit"), ("tiny-gemma3", "layernorm"),
                                        ("tiny-phi3", "rope_fixed_pos")])
def test_reference_detects_bugs(models, preset, bug):
    """The comparison can fail: a classic bug switched on in minnow leaves the bounds."""
    kls, rel = figures(minnow_logits(models[preset], TOKENS, {"MINNOW_DEBUG_BREAK": bug}),
                       reference_logits(models[preset], TOKENS))
    print(f"{preset} with {bug}: max KL = {kls.max():.2e}, max |logit diff| / std = {rel:.4f}")
    assert kls.max() > 1e-4 or rel > 0.03
