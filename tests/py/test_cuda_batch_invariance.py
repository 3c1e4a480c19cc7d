"""CUDA backend: a token's logits do not depend on how many tokens share its forward pass (up to 32, the
mat-vec range), nor on which small-batch path ran it (the persistent decode kernel for up to 8 tokens, or the
kernel-per-op graphs with MINNOW_CUDA_PERSISTENT=0). Compared bitwise. Skips without a CUDA GPU.

MINNOW_TL_MODEL may name a second (larger) model to check the same way (scripts/gpu_check.sh sets it to the
TinyLlama-shaped file it writes)."""
import glob
import os
import subprocess
import tempfile

import numpy as np
import pytest

BIN = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = os.environ.get("MINNOW_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
MODELS = [os.path.join(SHARED, "models/tiny-llama-q4km.gguf")]
if os.environ.get("MINNOW_TL_MODEL"):
    MODELS.append(os.environ["MINNOW_TL_MODEL"])
TOKENS = [1, 450, 7483, 310, 3444, 338, 3681, 29889, 450, 7483, 310, 9556, 338, 5115, 29889, 13, 1576, 4799,
          338, 263, 1560, 1259, 29892, 322, 278, 1176, 3430, 297, 2678, 29889, 3118, 2462, 29892, 727, 471, 263,
          2217, 2414, 29889]


def have_cuda():
    r = subprocess.run([BIN, "score", "-m", MODELS[0], "--tokens", "1", "--top", "1", "--device", "cuda"],
                       capture_output=True, text=True, timeout=300)
    return r.returncode == 0


def logits(model, batch, persistent, extra=None):
    """Every position's logits [n, n_vocab] with `batch` tokens per forward pass; also the stderr text."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, MINNOW_CUDA_PERSISTENT="1" if persistent else "0", **(extra or {}))
        r = subprocess.run([BIN, "score", "-m", model, "--tokens", ",".join(map(str, TOKENS)), "--top", "1",
                            "-b", str(batch), "--dump", d, "--device", "cuda", "-c", "256"],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        files = [os.path.join(d, "logits.npy")]
        files += sorted(glob.glob(os.path.join(d, "logits.call*.npy")), key=lambda f: int(f.split("call")[-1][:-4]))
        out = np.concatenate([np.load(f) for f in files], axis=0)
    assert out.shape[0] == len(TOKENS)
    return out, r.stderr


@pytest.mark.parametrize("model", MODELS)
def test_logits_bitwise_equal_across_batch_sizes_and_paths(model):
    if not os.path.exists(model):
        pytest.skip("model not found")
    if not have_cuda():
        pytest.skip("no CUDA GPU (or built without CUDA)")
    ref, err = logits(model, 1, True)
    assert "persistent decode not used" not in err, err
    assert np.all(np.isfinite(ref))
    runs = [(b, p, {}) for b in (1, 3, 8, 13, 32) for p in (True, False) if (b, p) != (1, True)]
    # Other kernel shapes and hand-offs that must not change a bit: 8 warps per mat-vec block, down taking gate+up's
    # int8 output instead of quantising its input itself (both ways measured on the same build: equal).
    runs += [(1, False, {"MINNOW_CUDA_WARPS": "8"}), (13, False, {"MINNOW_CUDA_Q8HANDOFF": "1"}),
             (1, True, {"MINNOW_CUDA_Q8HANDOFF": "1"})]
    for b, p, extra in runs:
        got, _ = logits(model, b, p, extra)
        diff = np.abs(got.astype(np.float64) - ref).max()
        print(f"{os.path.basename(model)}: batch {b:2d} persistent={p} {extra}: max |diff| vs batch 1 persistent = {diff:.3g}")
        assert np.array_equal(got, ref), f"batch {b} persistent={p} {extra} differs by up to {diff}"
