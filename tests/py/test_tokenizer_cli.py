"""`minnow tokenize` end to end: llama.cpp's vocab test vectors through the command line (-f, exact bytes,
--no-bos), every golden's prompt tokens (BOS included) with its model (tiny models of any architecture, SmolLM2,
the real Gemma 3 270M), --special, llama.cpp's rule for user-defined tokens in plain text, and clean errors on
bad input. Missing reference data fails; nothing here skips."""
import json
import os
import subprocess
from pathlib import Path

import pytest

MINNOW = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = Path(os.environ.get("MINNOW_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))
CACHE = Path(os.environ.get("MINNOW_MODEL_CACHE", Path.home() / ".cache" / "minnow"))
SMOL = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = CACHE / "gemma-3-270m-q4_k_m.gguf"
TINY = SHARED / "models" / "tiny-llama-q4km.gguf"
VECTORS = sorted(p.name[: -len(".gguf.inp")] for p in (SHARED / "vocab").glob("*.gguf.inp")) or ["none-found"]
GOLDENS = sorted(p.stem for p in (SHARED / "golden").glob("*.jsonl")) or ["none-found"]


def require(path):
    assert Path(path).exists(), (f"missing reference data: {path} (../shared is described in its README; models in "
                                 "the cache come from scripts/fetch_model.sh and scripts/fetch_gemma.sh)")
    return path


def golden_model(name):
    """The model a golden was made with: real models from the cache, the others from ../shared/models."""
    real = {"gemma3-270m": GEMMA, "smollm2-135m": SMOL, "smollm2-135m-chat": SMOL,
            "tiny-llama-q4km": TINY}
    return real.get(name, SHARED / "models" / f"{name}-tiny.gguf")


def tokenize(model, *args, text=None, tmp_path=None):
    cmd = [MINNOW, "tokenize", "-m", str(model), *args]
    if text is not None:
        f = tmp_path / "input.txt"
        f.write_bytes(text if isinstance(text, bytes) else text.encode())
        cmd += ["-f", str(f)]
    return subprocess.run(cmd, capture_output=True, timeout=120)


def ids_of(proc):
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return [int(x) for x in proc.stdout.decode().split()]


def read_vectors(name):
    raw = (SHARED / "vocab" / f"{name}.gguf.inp").read_bytes().decode()
    inputs = raw.split("\n__ggml_vocab_test__\n")[:-1]
    outs = (SHARED / "vocab" / f"{name}.gguf.out").read_text().split("\n")
    return inputs, [[int(x) for x in line.split()] for line in outs[: len(inputs)]]


@pytest.mark.parametrize("name", VECTORS)
def test_vectors_via_cli(name, tmp_path):
    model = require(SHARED / "vocab" / f"{name}.gguf")
    require(SHARED / "vocab" / f"{name}.gguf.inp")
    require(SHARED / "vocab" / f"{name}.gguf.out")
    inputs, expected = read_vectors(name)
    assert len(inputs) == len(expected) > 10
    # The unit test (test_tokenizer VocabVectors) checks every vector through the library; here every fifth goes
    # through the command line, one process each (large vocabularies take a fraction of a second to load).
    for text, want in list(zip(inputs, expected))[::5]:
        assert ids_of(tokenize(model, "--no-bos", text=text, tmp_path=tmp_path)) == want, repr(text)


@pytest.mark.parametrize("name", GOLDENS)
def test_golden_prompt_tokens(name, tmp_path):
    """llama.cpp's prompt_tokens (BOS + prompt) for every golden prompt, from the golden's own model file.
    The chat golden's ids contain its template's special tokens, parsed as --special does."""
    golden = require(SHARED / "golden" / f"{name}.jsonl")
    model = require(golden_model(name))
    rows = [json.loads(line) for line in golden.read_text().splitlines() if line.strip()]
    assert rows
    extra = ["--special"] if name.endswith("-chat") else []
    for row in rows:
        args = ([] if row.get("add_bos", True) else ["--no-bos"]) + extra
        got = ids_of(tokenize(model, *args, text=row["prompt"], tmp_path=tmp_path))
        assert got == row["prompt_tokens"], row["prompt"]
        # -p gives the same ids as -f
        assert ids_of(subprocess.run([MINNOW, "tokenize", "-m", str(model), *args, "-p", row["prompt"]],
                                     capture_output=True, timeout=60)) == got


def test_tokenize_reads_no_weights(tmp_path):
    """Tokenizing needs only the tokenizer metadata: a file of an architecture minnow cannot run, with no
    tensors at all, tokenizes like the vocabulary it carries."""
    spm = require(SHARED / "vocab" / "ggml-vocab-llama-spm.gguf")
    import gguf
    src = gguf.GGUFReader(str(spm))
    f = tmp_path / "odd-arch.gguf"
    w = gguf.GGUFWriter(str(f), "no-such-architecture")
    w.add_tokenizer_model("llama")
    names = {"tokenizer.ggml.tokens": w.add_token_list, "tokenizer.ggml.scores": w.add_token_scores,
             "tokenizer.ggml.token_type": w.add_token_types}
    for key, add in names.items():
        field = src.fields[key]
        add(field.contents())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    text = "Hello world, ünïcödé 🦙"
    assert ids_of(tokenize(f, text=text, tmp_path=tmp_path)) == ids_of(tokenize(spm, text=text, tmp_path=tmp_path))


def test_user_defined_special_text_stays_text_without_special(tmp_path):
    """llama.cpp's rule: a user-defined token whose text marks it as special (phi-3's "</s>", an
    end-of-generation text) is not parsed from plain text; with --special it is, and phi-3 drops the spaces after
    it."""
    phi = require(SHARED / "vocab" / "ggml-vocab-phi-3.gguf")
    plain = ids_of(tokenize(phi, "--no-bos", text="a</s>   b", tmp_path=tmp_path))
    assert 2 not in plain
    assert plain != ids_of(tokenize(phi, "--no-bos", text="a</s>b", tmp_path=tmp_path))  # spaces kept as text
    special = ids_of(tokenize(phi, "--no-bos", "--special", text="a</s>   b", tmp_path=tmp_path))
    assert special.count(2) == 1
    assert special == ids_of(tokenize(phi, "--no-bos", "--special", text="a</s>b", tmp_path=tmp_path))


def test_bos_and_exact_bytes(tmp_path):
    spm = require(SHARED / "vocab" / "ggml-vocab-llama-spm.gguf")
    with_bos = ids_of(tokenize(spm, text="Hello world", tmp_path=tmp_path))
    without = ids_of(tokenize(spm, "--no-bos", text="Hello world", tmp_path=tmp_path))
    assert with_bos == [1] + without
    # -f keeps a trailing newline and CRLF: they change the ids.
    nl = ids_of(tokenize(spm, "--no-bos", text="Hello world\n", tmp_path=tmp_path))
    crlf = ids_of(tokenize(spm, "--no-bos", text="Hello world\r\n", tmp_path=tmp_path))
    assert nl[:-1] == without and nl != crlf and len(crlf) > len(nl) - 1
    # invalid UTF-8 is tokenized (byte fallback), not rejected
    ids_of(tokenize(spm, text=b"\xff\xfe abc \xc3", tmp_path=tmp_path))


def test_special_flag(tmp_path):
    require(SMOL)
    text = "<|im_start|>user\nHi<|im_end|>"
    special = ids_of(tokenize(SMOL, "--special", text=text, tmp_path=tmp_path))
    plain = ids_of(tokenize(SMOL, text=text, tmp_path=tmp_path))
    assert special[0] == 1 and special[-1] == 2  # <|im_start|>, <|im_end|>
    assert 1 not in plain and 2 not in plain
    assert len(plain) > len(special)


def write_vocab(path, pre="gpt-2", model="gpt2", tokens=("a", "b", "ab"), merges=("a b",), **kw):
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    if model is not None:
        w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    if tokens is not None:
        w.add_token_list(list(tokens))
    if merges is not None:
        w.add_token_merges(list(merges))
    for k, v in kw.items():
        w.add_string(k, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_synthetic_bpe_vocab(tmp_path):
    f = write_vocab(tmp_path / "v.gguf")
    assert ids_of(tokenize(f, "-p", "abab")) == [2, 2]
    assert ids_of(tokenize(f, "-p", "ba")) == [1, 0]


@pytest.mark.parametrize("kind", ["unknown-pre", "unknown-model", "no-tokens", "no-model", "no-merges"])
def test_bad_tokenizer_metadata(tmp_path, kind):
    args = {
        "unknown-pre": dict(pre="no-such-pre"),
        "unknown-model": dict(model="t5-unigram"),
        "no-tokens": dict(tokens=None),
        "no-model": dict(model=None),
        "no-merges": dict(merges=None),
    }[kind]
    f = write_vocab(tmp_path / "bad.gguf", **args)
    p = tokenize(f, "-p", "ab")
    assert p.returncode == 1
    err = p.stderr.decode()
    assert err.startswith("error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("args", [[], ["-p", "x", "-f", "y"], ["--bogus", "-p", "x"], ["-f", "/no/such/file"]])
def test_bad_flags(args):
    model = SHARED / "vocab" / "ggml-vocab-gpt-2.gguf"
    p = subprocess.run([MINNOW, "tokenize", "-m", str(model), *args], capture_output=True, timeout=60)
    assert p.returncode == 1 and p.stderr.decode().startswith("error: ")


def test_not_a_model(tmp_path):
    f = tmp_path / "x.gguf"
    f.write_bytes(b"not a gguf file at all")
    p = tokenize(f, "-p", "x")
    assert p.returncode == 1 and p.stderr.decode().startswith("error: ")
