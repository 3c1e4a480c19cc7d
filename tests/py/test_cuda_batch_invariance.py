"""CUDA backend: a token's logits do not depend on how many tokens share its forward pass (up to 32, the
mat-vec range). Compared bitwise, on the TinyLlama-shaped golden model and on the small model of every
architecture in ../shared/models (each one's features: biases, Q/K norms, NeoX RoPE, sliding window, ...).
Skips without a CUDA GPU; an architecture the model layer does not load yet (CPU refuses it) is skipped.

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
MODELS += [os.path.join(SHARED, f"models/{a}-tiny.gguf") for a in ("llama3", "qwen2", "qwen3", "gemma3", "phi3")]
if os.environ.get("MINNOW_TL_MODEL"):
    MODELS.append(os.environ["MINNOW_TL_MODEL"])
TOKENS = [1, 450, 7483, 310, 3444, 338, 3681, 29889, 450, 7483, 310, 9556, 338, 5115, 29889, 13, 1576, 4799,
          338, 263, 1560, 1259, 29892, 322, 278, 1176, 3430, 297, 2678, 29889, 3118, 2462, 29892, 727, 471, 263,
          2217, 2414, 29889]


def have_cuda():
    r = subprocess.run([BIN, "score", "-m", MODELS[0], "--tokens", "1", "--top", "1", "--device", "cuda"],
                       capture_output=True, text=True, timeout=300)
    return r.returncode == 0


def cpu_loads(model):
    r = subprocess.run([BIN, "score", "-m", model, "--tokens", "1", "--top", "1", "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)
    return r.returncode == 0


def logits(model, batch, extra=None):
    """Every position's logits [n, n_vocab] with `batch` tokens per forward pass; also the stderr text."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, **(extra or {}))
        r = subprocess.run([BIN, "score", "-m", model, "--tokens", ",".join(map(str, TOKENS)), "--top", "1",
                            "-b", str(batch), "--dump", d, "--device", "cuda", "-c", "256"],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr
        files = [os.path.join(d, "logits.npy")]
        files += sorted(glob.glob(os.path.join(d, "logits.call*.npy")), key=lambda f: int(f.split("call")[-1][:-4]))
        out = np.concatenate([np.load(f) for f in files], axis=0)
    assert out.shape[0] == len(TOKENS)
    return out, r.stderr


@pytest.mark.parametrize("model", MODELS, ids=os.path.basename)
def test_logits_bitwise_equal_across_batch_sizes(model):
    if not os.path.exists(model):
        pytest.skip("model not found")
    if not have_cuda():
        pytest.skip("no CUDA GPU (or built without CUDA)")
    if not cpu_loads(model):
        pytest.skip("the model layer does not load this architecture yet")
    ref, _ = logits(model, 1)
    assert np.all(np.isfinite(ref))
    for b in (3, 8, 13, 32):
        got, _ = logits(model, b)
        diff = np.abs(got.astype(np.float64) - ref).max()
        print(f"{os.path.basename(model)}: batch {b:2d}: max |diff| vs batch 1 = {diff:.3g}")
        assert np.array_equal(got, ref), f"batch {b} differs by up to {diff}"
