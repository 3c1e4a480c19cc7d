"""Byte-level BPE pre-tokenizers (`minnow tokenize --pieces`) against Python's `regex` module running the
split patterns as published in the models' tokenizer.json, with llama.cpp's sequencing: each pattern is
applied to every piece the previous ones produced, and both matches and the gaps between them are kept.
Covers the pre-tokenizers whose vocabularies are too large to ship (llama-bpe, qwen2) with synthetic
tokenizer-only GGUF files."""
import os
import random
import subprocess
from pathlib import Path

import pytest

import gguf
import regex

MINNOW = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = Path(os.environ.get("MINNOW_SHARED_DIR", Path(__file__).resolve().parents[2].parent / "shared"))

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2 = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
CJK = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"

PATTERNS = {
    "gpt-2": [GPT2],
    "smollm": [r"\p{N}", GPT2],
    "starcoder": [r"\p{N}", GPT2],
    "llama-bpe": [LLAMA3],
    "qwen2": [QWEN2],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
    "deepseek-coder": ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK, r"\p{N}"],
}

ALPHABET = list("aZé ß\t\n\r 0123456789'.,!?-_()[]{}<>$+=^~|`\"#") + [
    "  ", "   ", "\r\n", "'s", "'LL", "'Re", "hello", "World", "日本", "한국", "ру", "ع", "🦙", "😀", "½", "²",
    "\u00a0", "\u3000", "\u2003", "\u0301", "\u0085", "\u180e", "\u200b", "\ufeff", "\x1c", "\x0b", "Ⅻ", "१२", "…", "—", "“", "”", "€", "©",
]


def reference_split(text, patterns):
    pieces = [text]
    for p in patterns:
        rx = regex.compile(p)
        out = []
        for piece in pieces:
            pos = 0
            for m in rx.finditer(piece):
                if m.start() > pos:
                    out.append(piece[pos:m.start()])
                out.append(m.group())
                pos = m.end()
            if pos < len(piece):
                out.append(piece[pos:])
        pieces = out
    return pieces


@pytest.fixture(scope="module")
def vocab_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pre")
    files = {}
    for pre in PATTERNS:
        path = d / f"{pre}.gguf"
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list([chr(c) for c in range(33, 127)])
        w.add_token_merges(["a b"])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        files[pre] = path
    return files


def minnow_pieces(model, text, tmp_path):
    import json
    f = tmp_path / "text.txt"
    f.write_bytes(text.encode())
    p = subprocess.run([MINNOW, "tokenize", "-m", str(model), "-f", str(f), "--pieces"], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)


def inputs():
    texts = []
    inp = SHARED / "vocab" / "ggml-vocab-llama-bpe.gguf.inp"
    if inp.exists():
        texts += inp.read_bytes().decode().split("\n__ggml_vocab_test__\n")[:-1]
    rng = random.Random(5)
    for _ in range(40):
        texts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 30))))
    return [t for t in texts if t]


@pytest.mark.parametrize("pre", sorted(PATTERNS))
def test_pieces_match_reference(pre, vocab_files, tmp_path):
    for text in inputs():
        got = minnow_pieces(vocab_files[pre], text, tmp_path)
        assert "".join(got) == text
        assert got == reference_split(text, PATTERNS[pre]), repr(text)
