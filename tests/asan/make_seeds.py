"""Seed corpus for the GGUF fuzzer: small, valid GGUF files made from the vocab files in SHARED/vocab
(every metadata key kept, arrays cut to a few items) plus a few small synthetic models with tensors.
Usage: make_seeds.py SHARED_DIR OUT_DIR"""
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "py"))
import gguf_bad as g  # noqa: E402


def shrunk_kvs(r, keep):
    out = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        t = int(f.types[0])
        if t == g.ARR:
            et = int(f.types[1])
            if et == g.ARR:
                continue
            items = [f.parts[i] for i in f.data[:keep]]
            vals = [bytes(x) if et == g.STR else x[0].item() for x in items]
            out.append(g.kv(name, g.ARR, (et, vals)))
        elif t == g.STR:
            out.append(g.kv(name, t, bytes(f.parts[f.data[0]])))
        else:
            out.append(g.kv(name, t, f.parts[f.data[0]][0].item()))
    return out


def main():
    shared, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    random.seed(1)
    n = 0
    import gguf
    vocabs = sorted((shared / "vocab").glob("*.gguf"))
    model_kvs = []
    for v in vocabs:
        reader = gguf.GGUFReader(str(v))
        for keep in (3, 24):
            kvs = shrunk_kvs(reader, keep)
            (out / f"{v.stem}-{keep}.gguf").write_bytes(g.model([], kvs))
            n += 1
        model_kvs = model_kvs or shrunk_kvs(reader, 4)
    tensors = [("token_embd.weight", [8, 4], g.F32_T, None), ("blk.0.attn_q.weight", [64, 2], g.Q4_0_T, None),
               ("output_norm.weight", [8], g.F16_T, None), ("x.4d", [2, 1, 3, 2], g.F32_T, None)]
    (out / "model-a32.gguf").write_bytes(g.model(tensors, model_kvs))
    (out / "model-a64.gguf").write_bytes(
        g.model(tensors[:2], model_kvs[:3] + [g.kv("general.alignment", g.U32, 64)], align=64))
    (out / "model-bare.gguf").write_bytes(g.model(tensors[1:3]))
    nested = g.kv("n", g.ARR, (g.ARR, [(g.U16, [1, 2]), (g.STR, [b"a"])]))
    (out / "kv-nested.gguf").write_bytes(g.header(0, 1) + nested)
    scalars = [g.kv(f"s{t}", t, 1) for t in (g.U8, g.I8, g.U16, g.I16, g.U32, g.I32, g.F32, g.BOOL, g.U64, g.I64, g.F64)]
    (out / "kv-scalars.gguf").write_bytes(g.model([], scalars))
    print(f"wrote {n + 5} seeds to {out}")


if __name__ == "__main__":
    main()
