"""`minnow quantize` end to end, read back with PyPI's gguf package (an independent reader and decoder)."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q, GGUFReader
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parents[2]
MINNOW = Path(os.environ.get("MINNOW_BIN", ROOT / "build" / "bin" / "minnow"))
SHARED = Path(os.environ.get("MINNOW_SHARED_DIR", ROOT.parent / "shared"))
CACHE = Path(os.environ.get("MINNOW_MODEL_CACHE", Path.home() / ".cache" / "minnow"))
TINY = SHARED / "models" / "tiny-llama-q4km.gguf"
SMOL = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"


def need(path):
    if not MINNOW.exists():
        pytest.skip(f"{MINNOW} not built")
    if not path.exists():
        pytest.skip(f"{path} absent")


def quantize(src, dst, typ, *extra):
    r = subprocess.run([str(MINNOW), "quantize", str(src), str(dst), typ, "-t", "2", *extra],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def field(reader, key):
    f = reader.fields[key]
    return f.parts[f.data[0]].tolist()


def fields_except(reader, skip):
    out = {}
    for k, f in reader.fields.items():
        if k.startswith("GGUF.") or k in skip:
            continue
        out[k] = [bytes(f.parts[i]) for i in f.data]
    return out


def tensors(reader):
    return {t.name: t for t in reader.tensors}


def decoded(t):
    return dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float64)


@pytest.fixture(scope="module")
def tiny_f16(tmp_path_factory):
    """The reference model as F16, so that every weight is really re-encoded by the tests below."""
    need(TINY)
    f16 = tmp_path_factory.mktemp("f16") / "f16.gguf"
    quantize(TINY, f16, "F16")
    return f16


def test_requantizing_llama_quantize_output_keeps_its_types(tmp_path):
    need(TINY)
    out = tmp_path / "q4km.gguf"
    quantize(TINY, out, "Q4_K_M")
    a, b = GGUFReader(TINY), GGUFReader(out)
    # Same tensor order (llama-quantize's), types, shapes; Q4_K_M needs no re-encoding at all.
    assert [t.name for t in a.tensors] == [t.name for t in b.tensors]
    for ta, tb in zip(a.tensors, b.tensors):
        assert ta.tensor_type == tb.tensor_type, ta.name
        assert list(ta.shape) == list(tb.shape)
        assert np.array_equal(np.asarray(ta.data).view(np.uint8), np.asarray(tb.data).view(np.uint8)), ta.name
    assert fields_except(a, {"general.quantization_version"}) == fields_except(b, {"general.quantization_version"})


@pytest.mark.parametrize("typ,ftype,main,bound", [
    ("Q8_0", 7, Q.Q8_0, 0.01), ("Q6_K", 18, Q.Q6_K, 0.03), ("Q5_K_M", 17, Q.Q5_K, 0.06),
    ("Q4_0", 2, Q.Q4_0, 0.15), ("Q3_K_M", 12, Q.Q3_K, 0.25), ("Q2_K", 10, Q.Q2_K, 0.45),
])
def test_quantized_tiny_model_decodes_close_to_the_original(tmp_path, tiny_f16, typ, ftype, main, bound):
    f16 = tiny_f16
    out = tmp_path / "out.gguf"
    log = quantize(f16, out, typ, "--stats")
    assert "overall: rmse" in log
    src, dst = GGUFReader(f16), GGUFReader(out)
    assert field(dst, "general.file_type") == [ftype]
    assert field(dst, "general.quantization_version") == [2]
    assert fields_except(src, {"general.file_type"}) == fields_except(dst, {"general.file_type"})
    ts, td = tensors(src), tensors(dst)
    assert set(ts) == set(td)
    assert td["blk.1.attn_q.weight"].tensor_type == main
    assert td["output_norm.weight"].tensor_type == Q.F32
    for name, t in td.items():
        x, y = decoded(ts[name]), decoded(t)
        rel = np.sqrt(np.mean((x - y) ** 2) / max(np.mean(x ** 2), 1e-30))
        assert rel < bound, (name, t.tensor_type.name, rel)


def test_f16_and_bf16_targets(tmp_path):
    need(TINY)
    for typ, ftype, qt in [("F16", 1, Q.F16), ("BF16", 32, Q.BF16)]:
        out = tmp_path / f"{typ}.gguf"
        quantize(TINY, out, typ)
        r = GGUFReader(out)
        assert field(r, "general.file_type") == [ftype]
        src = tensors(GGUFReader(TINY))
        for t in r.tensors:
            if len(t.shape) == 1:
                assert t.tensor_type == Q.F32
                continue
            assert t.tensor_type == qt
            x, y = decoded(src[t.name]), decoded(t)
            assert np.max(np.abs(x - y)) <= np.max(np.abs(x)) * (2 ** -8 if typ == "BF16" else 2 ** -11)


def test_smollm2_fallbacks_and_quality(tmp_path):
    need(SMOL)
    out = tmp_path / "smol.gguf"
    quantize(SMOL, out, "Q4_K_M")
    td = tensors(GGUFReader(out))
    # 576-wide rows cannot hold 256-element super-blocks: llama.cpp's fallbacks.
    assert td["token_embd.weight"].tensor_type == Q.Q8_0
    assert td["blk.5.attn_q.weight"].tensor_type == Q.Q5_0
    assert td["blk.0.attn_v.weight"].tensor_type == Q.Q8_0
    assert td["blk.0.ffn_down.weight"].tensor_type == Q.Q6_K
    assert td["blk.3.ffn_down.weight"].tensor_type == Q.Q4_K
    src = tensors(GGUFReader(SMOL))
    for name in ["blk.3.ffn_down.weight", "blk.5.attn_q.weight"]:
        x, y = decoded(src[name]), decoded(td[name])
        assert np.sqrt(np.mean((x - y) ** 2) / np.mean(x ** 2)) < 0.07, name


def test_eval_mode_prints_ordered_errors(tmp_path):
    need(TINY)
    r = subprocess.run([str(MINNOW), "quantize", "--eval", str(TINY), "Q8_0", "Q6_K", "Q4_K", "Q2_K", "-t", "2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    rel = {row[0]: float(row[4]) for row in rows}
    assert set(rel) == {"q8_0", "q6_K", "q4_K", "q2_K"}
    assert all(int(row[1]) > 0 for row in rows)
    # The weights already lie on Q4_K / Q6_K grids, so only the coarse order is meaningful here.
    assert 0 < rel["q8_0"] < rel["q2_K"] and 0 < rel["q4_K"] < rel["q2_K"]


@pytest.mark.parametrize("args,msg", [
    (["IN", "OUT", "Q9_K"], "unknown quantization type"),
    (["/nonexistent.gguf", "OUT", "Q4_0"], ""),
    (["IN", "OUT"], "usage"),
    (["IN", "OUT", "Q4_0", "-t", "0"], "-t"),
])
def test_bad_invocations_fail_cleanly(tmp_path, args, msg):
    need(TINY)
    args = [str(TINY) if a == "IN" else str(tmp_path / "o.gguf") if a == "OUT" else a for a in args]
    r = subprocess.run([str(MINNOW), "quantize", *args], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.startswith("error:") and msg in r.stderr
    assert not (tmp_path / "o.gguf").exists()
