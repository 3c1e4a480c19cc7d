"""Hostile command-line input (issue 18): endless or non-regular input files, out-of-range probability flags,
thread creation that fails, and a model whose block_count has no layers behind it. Each case must end with a
one-line error and exit 1 within a few seconds, under `ulimit -v` (bounded memory), never crash or hang."""
import os
import resource
import struct
import subprocess
from pathlib import Path

import pytest

MINNOW = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = Path(os.environ.get("MINNOW_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))
TINY = SHARED / "models" / "tiny-llama-q4km.gguf"
VMEM = 2 << 30  # bytes of address space each command gets


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (VMEM, VMEM))


def run(*args, timeout=20):
    """Runs minnow under the address-space limit; a hang fails the test (TimeoutExpired)."""
    return subprocess.run([MINNOW, *map(str, args)], capture_output=True, timeout=timeout, preexec_fn=limited,
                          stdin=subprocess.DEVNULL)


def expect_error(proc, *needles):
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 1, f"exit {proc.returncode}, stderr: {err!r}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in err, err
    assert "terminate called" not in err


@pytest.fixture(scope="module")
def tiny():
    if not TINY.exists():
        pytest.skip(f"{TINY} not present")
    return TINY


@pytest.mark.parametrize("cmd", ["tokenize", "perplexity"])
def test_endless_device_is_refused(tiny, cmd):
    expect_error(run(cmd, "-m", tiny, "-f", "/dev/zero"), "character device")


@pytest.mark.parametrize("cmd", ["tokenize", "perplexity"])
def test_directory_is_refused(tiny, cmd, tmp_path):
    expect_error(run(cmd, "-m", tiny, "-f", tmp_path), "is a directory")


def test_fifo_is_refused_without_waiting_for_a_writer(tiny, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    expect_error(run("tokenize", "-m", tiny, "-f", fifo), "FIFO")


def test_file_over_the_size_cap_is_refused(tiny, tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate((256 << 20) + 1)  # sparse: costs no disk
    expect_error(run("tokenize", "-m", tiny, "-f", big), "limit of 256 MiB")


def test_regular_file_still_tokenizes(tiny, tmp_path):
    f = tmp_path / "in.txt"
    f.write_bytes(b"Hello world")
    p = run("tokenize", "-m", tiny, "-f", f, "--no-bos")
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.split()) >= 2


@pytest.mark.parametrize("cmd", [["run", "-p", "hi"], ["chat"]])
@pytest.mark.parametrize("flag,value", [("--top-p", "2"), ("--min-p", "2"), ("--top-p", "-0.1"), ("--min-p", "-1"),
                                        ("--top-p", "1.0000001")])
def test_probability_flags_out_of_range(tiny, cmd, flag, value):
    expect_error(run(*cmd, "-m", tiny, flag, value), f"{flag} must be between 0 and 1")


def test_probability_flags_at_the_bounds_are_accepted(tiny):
    p = run("run", "-m", tiny, "-p", "hi", "-n", "1", "--top-p", "1", "--min-p", "0", "-t", "1", timeout=60)
    assert p.returncode == 0, p.stderr


def test_thread_creation_failure_is_a_clear_error(tiny):
    # 100000 worker threads cannot all get a stack within the address-space limit.
    p = run("score", "-m", tiny, "-p", "hi", "-t", "100000", timeout=60)
    expect_error(p, "cannot start CPU worker thread")


def patched_block_count(src, dst, value):
    blob = bytearray(src.read_bytes())
    key = b"llama.block_count"
    i = blob.find(struct.pack("<Q", len(key)) + key)
    assert i >= 0, "no llama.block_count key"
    j = i + 8 + len(key)
    vtype = struct.unpack_from("<I", blob, j)[0]
    assert vtype == 4, f"block_count has GGUF type {vtype}, expected uint32"
    struct.pack_into("<I", blob, j + 4, value)
    dst.write_bytes(bytes(blob))
    return dst


@pytest.mark.parametrize("value", [10**7, 2**31 - 1, 1000])
def test_block_count_without_layers_fails_fast(tiny, tmp_path, value):
    m = patched_block_count(tiny, tmp_path / "bad.gguf", value)
    expect_error(run("score", "-m", m, "-p", "hi", "-t", "1"), "block_count")
