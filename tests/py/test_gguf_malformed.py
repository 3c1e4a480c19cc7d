"""Malformed GGUF files: every one ends in exit code 1 and a one-line `error: FILE: problem` from `minnow info`
(never a signal, never a hang), and GgufFile::open in-process (fuzz/gguf_check) rejects it with minnow::Error.

Cases: hand-built files (gguf_bad.py), truncations of the real tiny-llama file at many points, every
structural field of that file set to impossible values, and a few hundred random byte corruptions.
Environment: MINNOW_BIN (the minnow binary), MINNOW_BIN_DIR (where gguf_check is), MINNOW_SHARED_DIR,
MINNOW_GGUF_SEED (repeat a run), MINNOW_GGUF_RANDOM_CASES (how many random corruptions, default 300).
"""
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_bad  # noqa: E402

MINNOW = os.environ.get("MINNOW_BIN", "build/bin/minnow")
BIN_DIR = Path(os.environ.get("MINNOW_BIN_DIR", Path(MINNOW).parent))
CHECK = BIN_DIR / "gguf_check"
SHARED = Path(os.environ.get("MINNOW_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))
TINY = SHARED / "models" / "tiny-llama-q4km.gguf"
SEED = int(os.environ.get("MINNOW_GGUF_SEED", int.from_bytes(os.urandom(4), "little")))
N_RANDOM = int(os.environ.get("MINNOW_GGUF_RANDOM_CASES", "300"))
print(f"gguf malformed suite: seed {SEED} (MINNOW_GGUF_SEED to repeat)")


def run(cmd):
    # A hang is a failure: subprocess raises TimeoutExpired.
    return subprocess.run(cmd, capture_output=True, timeout=30)


def check_one(path, must_fail, status_out=None):
    """Returns a problem description, or None when the file was handled properly. status (a list), if
    given, receives 'ok' or 'error' from the in-process check."""
    r = run([MINNOW, "info", "-m", str(path)])
    err = r.stderr.decode(errors="replace")
    if r.returncode < 0:
        return f"minnow info died of signal {-r.returncode}: {err[-2000:]}"
    if r.returncode not in (0, 1):
        return f"minnow info exit code {r.returncode}: {err[-2000:]}"
    if must_fail and r.returncode != 1:
        return "minnow info accepted it"
    if r.returncode == 1:
        if not err.startswith(f"error: {path}: ") or err.count("\n") != 1 or not err.endswith("\n"):
            return f"not a one-line 'error: {path}: ...' message: {err[:2000]!r}"
    elif err:
        return f"exit 0 but stderr: {err[:2000]!r}"
    c = run([str(CHECK), str(path)])
    out = c.stdout.decode(errors="replace")
    if c.returncode != 0 or out.count("\n") != 1:
        return f"gguf_check rc {c.returncode}: {out[:1000]!r} {c.stderr.decode(errors='replace')[-2000:]}"
    status = out.split("\t")[1].strip()
    if status_out is not None:
        status_out.append(status)
    want = "error" if r.returncode == 1 else "ok"
    if status != want:
        return f"in-process open says {status!r}, minnow info exit {r.returncode}: {out!r}"
    return None


def report(problems, total):
    assert not problems, f"{len(problems)} of {total} cases mishandled (seed {SEED}):\n" + "\n".join(problems[:20])


@pytest.fixture(scope="module")
def tiny_copy(tmp_path_factory):
    if not TINY.exists():
        pytest.skip(f"{TINY} not present")
    d = tmp_path_factory.mktemp("tiny")
    p = d / "tiny.gguf"
    shutil.copyfile(TINY, p)
    blob = TINY.read_bytes()
    fields, dir_end = gguf_bad.structural_fields(blob)
    return p, blob, fields, dir_end


def test_tools_exist():
    assert Path(MINNOW).exists(), MINNOW
    assert CHECK.exists(), f"{CHECK} (target gguf_check) not built"


def test_valid_handmade_files_are_accepted(tmp_path):
    # The builders make correct files when asked to, so the rejections below are for the intended reason.
    random.seed(SEED)
    two = gguf_bad.model([("a", [8, 2], gguf_bad.F32_T, None), ("b", [64], gguf_bad.Q4_0_T, None)])
    goods = [
        gguf_bad.model([]),
        two[:-28],  # the padding after the last tensor may be missing
        gguf_bad.model([("a", [8, 2], gguf_bad.F32_T, None), ("b", [64], gguf_bad.Q4_0_T, None)],
                       [gguf_bad.kv("general.architecture", gguf_bad.STR, "llama")]),
        gguf_bad.model([("a", [3, 1, 2, 5], gguf_bad.F16_T, None)],
                       [gguf_bad.kv("general.alignment", gguf_bad.U32, 64)], align=64),
        gguf_bad.header(0, 1) + gguf_bad.kv("k", gguf_bad.ARR, (gguf_bad.ARR, [(gguf_bad.U8, [1, 2]), (gguf_bad.STR, [])])),
    ]
    problems = []
    for i, b in enumerate(goods):
        p = tmp_path / f"good{i}.gguf"
        p.write_bytes(b)
        r = run([MINNOW, "info", "-m", str(p)])
        if r.returncode != 0:
            problems.append(f"good{i}: {r.stderr.decode()}")
    report(problems, len(goods))


def test_handmade_malformed_files(tmp_path):
    random.seed(SEED)
    cases = gguf_bad.handmade_cases()
    problems = []
    for i, (name, blob) in enumerate(cases):
        p = tmp_path / f"case{i}.gguf"
        p.write_bytes(blob)
        msg = check_one(p, must_fail=True)
        if msg:
            problems.append(f"{name}: {msg}")
    report(problems, len(cases))


def test_not_regular_files(tmp_path):
    problems = []
    fifo = tmp_path / "fifo.gguf"
    os.mkfifo(fifo)
    for p in (tmp_path, fifo, tmp_path / "missing.gguf"):
        msg = check_one(p, must_fail=True)
        if msg:
            problems.append(f"{p}: {msg}")
    report(problems, 3)


def test_truncations(tiny_copy, tmp_path):
    _, blob, fields, dir_end = tiny_copy
    rng = random.Random(SEED)
    data_start = dir_end + (-dir_end % 32)
    points = set(range(0, 40))
    points |= {off + d for off, width, _ in rng.sample(fields, min(60, len(fields))) for d in (0, 1, width - 1, width)}
    points |= {rng.randrange(24, dir_end) for _ in range(40)}
    points |= {dir_end - 1, dir_end, data_start - 1, data_start, data_start + 1, len(blob) // 2, len(blob) - 1}
    problems = []
    for n in sorted(points):
        p = tmp_path / "trunc.gguf"
        p.write_bytes(blob[:n])
        msg = check_one(p, must_fail=True)
        if msg:
            problems.append(f"truncated to {n} bytes: {msg}")
    report(problems, len(points))


def patched(path, offset, data, fn):
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(len(data))
        f.seek(offset)
        f.write(data)
    try:
        return fn()
    finally:
        with open(path, "r+b") as f:
            f.seek(offset)
            f.write(old)


def test_structural_fields_set_to_impossible_values(tiny_copy):
    path, blob, fields, _ = tiny_copy
    rng = random.Random(SEED)
    # The header's and every tensor's fields, and a sample of the metadata's.
    picked = [f for f in fields if f[2] in ("tensor count", "kv count", "n_dims", "tensor type", "tensor offset")]
    picked += rng.sample([f for f in fields if f not in picked], min(80, len(fields) - len(picked)))
    problems, total = [], 0
    for i, (off, width, kind) in enumerate(picked):
        if width == 8:
            values = [struct.pack("<Q", (1 << 63) if i % 2 else (1 << 64) - 1)]
        else:
            values = [struct.pack("<I", 0x80000000 if i % 2 else 0xFFFFFFFF)]
        if kind in ("n_dims", "dim"):
            values.append(b"\0" * width)
        for v in values:
            total += 1
            msg = patched(path, off, v, lambda: check_one(path, must_fail=True))
            if msg:
                problems.append(f"{kind} at byte {off} := {v.hex()}: {msg}")
    report(problems, total)


def test_misplaced_tensor_offsets(tiny_copy):
    # Every tensor in turn: misaligned, onto its neighbour, or past the end of the file.
    path, blob, fields, _ = tiny_copy
    offs = [off for off, _, kind in fields if kind == "tensor offset"]
    current = [struct.unpack_from("<Q", blob, o)[0] for o in offs]
    problems, total = [], 0
    for i, o in enumerate(offs):
        other = current[(i + 1) % len(current)]
        for v in ((current[i] + 1, current[i] + 16), (other, len(blob)))[i % 2]:
            total += 1
            msg = patched(path, o, struct.pack("<Q", v), lambda: check_one(path, must_fail=True))
            if msg:
                problems.append(f"tensor {i} offset := {v}: {msg}")
    report(problems, total)


def test_random_corruptions(tiny_copy):
    # Random bytes anywhere in the header, metadata and tensor directory. Some corruptions leave a valid
    # file (a changed character inside a token); those must be accepted cleanly, the rest rejected cleanly.
    path, blob, fields, dir_end = tiny_copy
    rng = random.Random(SEED)
    problems, rejected = [], 0
    for i in range(N_RANDOM):
        edits = []
        for _ in range(rng.choice((1, 1, 2, 4, 8))):
            if rng.random() < 0.5:
                off, width, _ = rng.choice(fields)
                off += rng.randrange(width)
            else:
                off = rng.randrange(0, dir_end)
            edits.append((off, bytes([rng.randrange(256)])))
        # Apply all edits, check, restore in reverse order.
        olds = []
        with open(path, "r+b") as f:
            for off, b in edits:
                f.seek(off)
                olds.append((off, f.read(1)))
                f.seek(off)
                f.write(b)
        status = []
        try:
            msg = check_one(path, must_fail=False, status_out=status)
            rejected += status == ["error"]
        finally:
            with open(path, "r+b") as f:
                for off, b in reversed(olds):
                    f.seek(off)
                    f.write(b)
        if msg:
            problems.append(f"corruption {i} {edits}: {msg}")
    print(f"random corruptions: {rejected} of {N_RANDOM} rejected, the rest still valid")
    report(problems, N_RANDOM)
    assert rejected > N_RANDOM // 4, "corruptions should mostly hit structure"
    assert path.read_bytes() == blob
