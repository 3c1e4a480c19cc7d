"""Reference block formats checked against an independent decoder: PyPI gguf's numpy (de)quantizers.

Driven through build/bin/quant_tool (raw blocks / tensors in, raw f32 out)."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q, GGUFReader
from gguf.quants import dequantize, quantize

BIN_DIR = Path(os.environ.get("MINNOW_BIN_DIR", Path(__file__).resolve().parents[2] / "build" / "bin"))
TOOL = BIN_DIR / "quant_tool"
SHARED = Path(os.environ.get("MINNOW_SHARED_DIR", Path(__file__).resolve().parents[3] / "shared"))
CACHE = Path(os.environ.get("MINNOW_MODEL_CACHE", Path.home() / ".cache" / "minnow"))

# Byte offsets of the fp16 scale fields in each block (set to sane finite values in random blocks).
FP16_FIELDS = {
    Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q8_0: [0],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
}
BLOCK_TYPES = list(FP16_FIELDS)
LEGACY = [Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0]


def ggml_name(t):
    return t.name.lower().replace("_k", "_K")


def tool(*args):
    if not TOOL.exists():
        pytest.skip(f"{TOOL} not built")
    r = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def ours_dequant(t, raw, tmp_path):
    src, dst = tmp_path / "in.bin", tmp_path / "out.f32"
    np.asarray(raw, dtype=np.uint8).tofile(src)
    tool("dequant", ggml_name(t), src, dst)
    return np.fromfile(dst, dtype=np.float32)


def ours_quant(t, x, tmp_path):
    src, dst = tmp_path / "in.f32", tmp_path / "out.bin"
    np.asarray(x, dtype=np.float32).tofile(src)
    tool("quant", ggml_name(t), src, dst)
    return np.fromfile(dst, dtype=np.uint8)


def random_blocks(t, nb, rng):
    _, ts = GGML_QUANT_SIZES[t]
    raw = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    for off in FP16_FIELDS[t]:
        v = rng.uniform(-3, 3, size=nb).astype(np.float16)
        raw[:, off:off + 2] = v.view(np.uint8).reshape(nb, 2)
    return raw.reshape(-1)


@pytest.mark.parametrize("t", BLOCK_TYPES, ids=lambda t: t.name)
def test_random_blocks_decode_like_gguf(t, tmp_path):
    rng = np.random.default_rng(int(t) * 7919 + 1)
    raw = random_blocks(t, int(rng.integers(20, 60)), rng)
    ours = ours_dequant(t, raw, tmp_path)
    ref = dequantize(raw, t).reshape(-1).astype(np.float32)
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("t", [Q.F16, Q.BF16], ids=lambda t: t.name)
def test_half_formats_round_trip_like_gguf(t, tmp_path):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(3001) * np.exp(rng.uniform(-40, 40, 3001))).astype(np.float32)
    x[:6] = [0.0, -0.0, np.inf, -np.inf, 65504.0, 6e-8]
    q = ours_quant(t, x, tmp_path)
    with np.errstate(over="ignore"):
        ref_q = quantize(x, t).view(np.uint8).reshape(-1)
    np.testing.assert_array_equal(q, ref_q)
    np.testing.assert_array_equal(ours_dequant(t, q, tmp_path), dequantize(q, t).reshape(-1))


@pytest.mark.parametrize("t", LEGACY, ids=lambda t: t.name)
def test_legacy_quantizers_match_gguf_bytes(t, tmp_path):
    rng = np.random.default_rng(int(t) + 11)
    nb = 77
    x = (rng.standard_normal(32 * nb) * rng.uniform(0.01, 3.0, size=32 * nb)).astype(np.float32)
    x[:32] = 0.0  # an all-zero block
    q = ours_quant(t, x, tmp_path)
    np.testing.assert_array_equal(q, quantize(x.reshape(nb, 32), t).reshape(-1))


@pytest.mark.parametrize("t", BLOCK_TYPES, ids=lambda t: t.name)
def test_quantize_then_gguf_decode_equals_ours(t, tmp_path):
    rng = np.random.default_rng(int(t) + 101)
    bs, _ = GGML_QUANT_SIZES[t]
    n = bs * max(1, 4096 // bs) * 3
    x = (rng.standard_normal(n) * 0.05).astype(np.float32)
    q = ours_quant(t, x, tmp_path)
    ours = ours_dequant(t, q, tmp_path)
    np.testing.assert_array_equal(ours, dequantize(q, t).reshape(-1))
    rel = np.sqrt(np.mean((ours - x) ** 2)) / np.sqrt(np.mean(x ** 2))
    assert rel < 0.35, rel


def test_dot_matches_numpy(tmp_path):
    rng = np.random.default_rng(9)
    for t in BLOCK_TYPES:
        raw = random_blocks(t, 5, rng)
        w = dequantize(raw, t).reshape(-1).astype(np.float64)
        x = rng.standard_normal(w.size).astype(np.float32)
        (tmp_path / "w.bin").write_bytes(raw.tobytes())
        x.tofile(tmp_path / "x.f32")
        got = float(tool("dot", ggml_name(t), tmp_path / "w.bin", tmp_path / "x.f32"))
        want = float(np.dot(w, x.astype(np.float64)))
        assert abs(got - want) <= 1e-9 * (np.abs(w) @ np.abs(x.astype(np.float64)) + 1), (t.name, got, want)


def real_models():
    out = []
    tiny = SHARED / "models" / "tiny-llama-q4km.gguf"
    out.append(pytest.param(tiny, id="tiny-llama-q4km"))
    out.append(pytest.param(CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf", id="smollm2-q4_1"))
    return out


@pytest.mark.parametrize("path", real_models())
def test_real_tensors_decode_like_gguf(path, tmp_path):
    if not path.exists():
        pytest.skip(f"{path} absent")
    reader = GGUFReader(path)
    per_type = {}
    for t in reader.tensors:
        if per_type.get(t.tensor_type, 0) >= 3:
            continue
        per_type[t.tensor_type] = per_type.get(t.tensor_type, 0) + 1
        out = tmp_path / "t.f32"
        tool("tensor", path, t.name, out)
        ours = np.fromfile(out, dtype=np.float32)
        ref = dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float32)
        np.testing.assert_array_equal(ours, ref, err_msg=t.name)
    assert len(per_type) >= 3  # e.g. Q4_K, Q6_K, F32 / Q4_1, Q8_0, F32


def test_tool_rejects_bad_input(tmp_path):
    if not TOOL.exists():
        pytest.skip("quant_tool not built")
    (tmp_path / "x.f32").write_bytes(b"\0" * 4 * 33)
    r = subprocess.run([str(TOOL), "quant", "q4_0", tmp_path / "x.f32", tmp_path / "o"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and r.stderr.startswith("error:")
    r = subprocess.run([str(TOOL), "dequant", "q8_K", tmp_path / "x.f32", tmp_path / "o"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "not supported" in r.stderr
