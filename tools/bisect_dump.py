#!/usr/bin/env python3
"""Layer-by-layer precision bisection of `minnow score --dump` against a float64 numpy forward (llama models).

Each op is recomputed in float64 from minnow's own dumped input (so errors do not accumulate) and the relative
error of minnow's output is printed per layer and op. --act-bits 8 (or 16) rounds the inputs of the matrix
products as minnow's CPU path does (per block of 32, scale max|x|/127; 16 = a second pass over the error), so a
kernel that does what it claims shows ~1e-7; --act-bits 0 compares with exact products instead.

  minnow score -m MODEL --tokens 1,2,3 --dump DIR
  python3 tools/bisect_dump.py MODEL DIR 1,2,3 [--act-bits 8]
"""
import argparse
import os

import numpy as np
import gguf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("dump")
    ap.add_argument("tokens")
    ap.add_argument("--act-bits", type=int, default=8, choices=[0, 8, 16])
    a = ap.parse_args()
    toks = [int(t) for t in a.tokens.split(",")]
    n = len(toks)
    r = gguf.GGUFReader(a.model)
    arch = str(r.fields["general.architecture"].contents())
    meta = lambda k, d=None: r.fields[f"{arch}.{k}"].contents() if f"{arch}.{k}" in r.fields else d
    n_layer, dm, nh = int(meta("block_count")), int(meta("embedding_length")), int(meta("attention.head_count"))
    nkv, hd = int(meta("attention.head_count_kv", nh)), dm // nh
    base, eps = float(meta("rope.freq_base", 10000.0)), float(meta("attention.layer_norm_rms_epsilon"))
    T = {t.name: t for t in r.tensors}

    def W(name):
        t = T[name]
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        return w.reshape(int(t.shape[1]), int(t.shape[0])) if len(t.shape) == 2 else w.reshape(-1)

    def D(name):
        return np.load(os.path.join(a.dump, name + ".npy")).astype(np.float64)

    def q8(x):  # one 8-bit pass, in float32 as minnow does it
        b = x.astype(np.float32).reshape(-1, 32)
        amax = np.abs(b).max(axis=1, keepdims=True)
        idv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
        q = np.rint(b * idv)
        return (q * (amax / np.float32(127))).astype(np.float64).reshape(x.shape)

    def act(x):
        if a.act_bits == 0:
            return x
        y = q8(x)
        return y + q8(x - y) if a.act_bits == 16 else y

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(x, h):
        x = x.reshape(n, h, hd).copy()
        th = np.arange(n)[:, None] * base ** (-2.0 * np.arange(hd // 2) / hd)[None, :]
        c, s = np.cos(th)[:, None, :], np.sin(th)[:, None, :]
        x0, x1 = x[:, :, 0::2].copy(), x[:, :, 1::2].copy()
        x[:, :, 0::2], x[:, :, 1::2] = x0 * c - x1 * s, x0 * s + x1 * c
        return x.reshape(n, -1)

    def rel(name, ref):
        return np.linalg.norm(D(name) - ref) / max(np.linalg.norm(ref), 1e-30)

    f16 = lambda x: x.astype(np.float16).astype(np.float64)  # the KV cache
    mask = np.triu(np.full((n, n), -np.inf), 1)
    print("layer  attn_norm  q  k  v  kqv  attn_out  ffn_norm  ffn_out   (relative error of minnow's output)")
    for l in range(n_layer):
        p, s = f"blk.{l}.", f"-{l}"
        x = D(f"l_out-{l - 1}") if l else D("inp_embd")
        e = [rel("attn_norm" + s, rms(x, W(p + "attn_norm.weight")))]
        h = act(D("attn_norm" + s))
        e += [rel("q" + s, rope(h @ W(p + "attn_q.weight").T, nh)), rel("k_rope" + s, rope(h @ W(p + "attn_k.weight").T, nkv)),
              rel("v" + s, h @ W(p + "attn_v.weight").T)]
        q, k, v = D("q" + s).reshape(n, nh, hd), f16(D("k_rope" + s)).reshape(n, nkv, hd), f16(D("v" + s)).reshape(n, nkv, hd)
        out = np.zeros((n, nh, hd))
        for i in range(nh):
            g = i // (nh // nkv)
            sc = q[:, i, :] @ k[:, g, :].T / np.sqrt(hd) + mask
            sc = np.exp(sc - sc.max(axis=1, keepdims=True))
            out[:, i, :] = (sc / sc.sum(axis=1, keepdims=True)) @ v[:, g, :]
        e.append(rel("kqv" + s, out.reshape(n, -1)))
        e.append(rel("attn_out" + s, act(D("kqv" + s)) @ W(p + "attn_output.weight").T))
        e.append(rel("ffn_norm" + s, rms(D("ffn_inp" + s), W(p + "ffn_norm.weight"))))
        h = act(D("ffn_norm" + s))
        gt, up = h @ W(p + "ffn_gate.weight").T, h @ W(p + "ffn_up.weight").T
        e.append(rel("ffn_out" + s, act(gt / (1 + np.exp(-gt)) * up) @ W(p + "ffn_down.weight").T))
        print(f"{l:5d}  " + "  ".join(f"{v:.1e}" for v in e))


if __name__ == "__main__":
    main()
