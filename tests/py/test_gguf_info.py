"""`minnow info` against PyPI's gguf package (GGUFReader), an independent GGUF parser.

Every metadata key, value type and value, and every tensor's name, type, shape, offset and size must agree.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

gguf = pytest.importorskip("gguf")

MINNOW = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = Path(os.environ.get("MINNOW_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))
CACHE = Path(os.environ.get("MINNOW_MODEL_CACHE", Path.home() / ".cache" / "minnow"))

FILES = [SHARED / "models" / "tiny-llama-q4km.gguf"] + sorted((SHARED / "vocab").glob("*.gguf"))
FILES.append(CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf")

TYPE_NAMES = {
    gguf.GGUFValueType.UINT8: "u8", gguf.GGUFValueType.INT8: "i8", gguf.GGUFValueType.UINT16: "u16",
    gguf.GGUFValueType.INT16: "i16", gguf.GGUFValueType.UINT32: "u32", gguf.GGUFValueType.INT32: "i32",
    gguf.GGUFValueType.FLOAT32: "f32", gguf.GGUFValueType.BOOL: "bool", gguf.GGUFValueType.STRING: "str",
    gguf.GGUFValueType.ARRAY: "arr", gguf.GGUFValueType.UINT64: "u64", gguf.GGUFValueType.INT64: "i64",
    gguf.GGUFValueType.FLOAT64: "f64",
}


def run_info(path, *extra):
    return subprocess.run([MINNOW, "info", "-m", str(path), *extra], capture_output=True, timeout=120)


def reference_value(field, elem_type, part_index):
    raw = field.parts[part_index]
    if elem_type == gguf.GGUFValueType.STRING:
        return bytes(raw).decode("utf-8", errors="replace")
    v = raw[0].item()
    if elem_type == gguf.GGUFValueType.BOOL:
        return bool(v)
    return v


def reference_metadata(reader):
    out = []
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        t = field.types[0]
        entry = {"key": name, "type": TYPE_NAMES[t]}
        if t == gguf.GGUFValueType.ARRAY:
            et = field.types[1]
            if len(field.types) > 2:  # nested arrays: compare only the outer shape
                entry["elem_type"] = TYPE_NAMES[et]
                entry["len"] = len(field.data)
            else:
                entry["elem_type"] = TYPE_NAMES[et]
                entry["value"] = [reference_value(field, et, i) for i in field.data]
        else:
            entry["value"] = reference_value(field, t, field.data[0])
        out.append(entry)
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_info_json_matches_gguf_package(path):
    if not path.exists():
        pytest.skip(f"{path} not present")
    r = run_info(path, "--json")
    assert r.returncode == 0, r.stderr.decode()
    got = json.loads(r.stdout)
    ref = gguf.GGUFReader(str(path))

    assert got["version"] == ref.fields["GGUF.version"].parts[-1][0]
    assert got["file_size"] == path.stat().st_size
    assert got["data_offset"] == ref.data_offset or (not ref.tensors and got["data_offset"] == path.stat().st_size)

    want = reference_metadata(ref)
    assert [m["key"] for m in got["metadata"]] == [m["key"] for m in want]
    for g, w in zip(got["metadata"], want):
        assert g["type"] == w["type"], g["key"]
        if "elem_type" in w:
            assert g["elem_type"] == w["elem_type"], g["key"]
        if "len" in w:
            assert len(g["value"]) == w["len"], g["key"]
        else:
            assert g["value"] == w["value"], g["key"]

    assert len(got["tensors"]) == len(ref.tensors)
    total = 0
    for g, t in zip(got["tensors"], ref.tensors):
        assert g["name"] == t.name
        assert g["type_id"] == int(t.tensor_type)
        assert g["shape"] == [int(x) for x in t.shape], t.name
        assert got["data_offset"] + g["offset"] == t.data_offset, t.name
        assert g["nbytes"] == int(t.n_bytes), t.name
        total += g["nbytes"]
    assert got["total_bytes"] == total


@pytest.mark.parametrize("path", FILES[:2], ids=lambda p: p.name)
def test_info_text_lists_everything(path):
    if not path.exists():
        pytest.skip(f"{path} not present")
    r = run_info(path)
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode()
    ref = gguf.GGUFReader(str(path))
    n_kv = sum(1 for k in ref.fields if not k.startswith("GGUF."))
    assert f"metadata: {n_kv} keys" in text
    assert f"tensors: {len(ref.tensors)}" in text
    for name in ref.fields:
        if not name.startswith("GGUF."):
            assert f"  {name} " in text
    for t in ref.tensors:
        assert f" {t.name} " in text
    # Long arrays are abbreviated, so the text stays small even for a 32000-token vocabulary.
    assert "(32000 items)" in text or "(50" in text or "items)" in text
    assert len(text) < 200_000


def test_info_usage_errors(tmp_path):
    r = subprocess.run([MINNOW, "info"], capture_output=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("error: ")
    missing = tmp_path / "missing.gguf"
    r = run_info(missing)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.startswith(f"error: {missing}: ") and err.count("\n") == 1, err
