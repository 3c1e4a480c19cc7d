#!/usr/bin/env bash
# Differential tokenizer check, minnow against llama.cpp, on random text (outside CI: it needs a libllama build).
#   bash scripts/tokenizer_diff.sh LLAMA_CPP_DIR [SEED] [N]
# LLAMA_CPP_DIR: ../shared/ref/llama.cpp-d32676d.tar.xz unpacked, with only its `llama` library built, e.g.
#   tar -xJf ../shared/ref/llama.cpp-d32676d.tar.xz -C /tmp && cd /tmp/llama.cpp &&
#   cmake -B build -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
#     -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF && cmake --build build -j2 --target llama
# (-O0 is enough and builds faster; on AMX CPUs add the -mno-amx-* flags of ../shared/README.md.)
# Tokenizes N random texts (scripts/tokenizer_diff_texts.py) with every vocabulary of ../shared/vocab and the
# cached SmolLM2 and Gemma 3 270M files, without BOS and without parsing special tokens, by
# ../shared/ref/tok.cpp and build/bin/tokenize_batch, and prints how many agree. Exits 1 on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA=$(cd "${1:?usage: tokenizer_diff.sh LLAMA_CPP_DIR [SEED] [N]}" && pwd)
SEED=${2:-1}
N=${3:-2000}
SHARED=${MINNOW_SHARED_DIR:-../shared}
CACHE=${MINNOW_MODEL_CACHE:-$HOME/.cache/minnow}
MINE=build/bin/tokenize_batch
[ -x "$MINE" ] || { echo "tokenizer_diff: build $MINE first (cmake --build build --target tokenize_batch)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
g++ -O2 -std=c++17 "$SHARED/ref/tok.cpp" -I "$LLAMA/include" -I "$LLAMA/ggml/include" -L "$LLAMA/build/bin" \
  -lllama -lggml -lggml-base -Wl,-rpath,"$LLAMA/build/bin" -o "$tmp/tok"
python3 scripts/tokenizer_diff_texts.py "$SEED" "$N" "$tmp/texts"
status=0
for model in "$SHARED"/vocab/*.gguf "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" "$CACHE/gemma-3-270m-q4_k_m.gguf"; do
  [ -f "$model" ] || { echo "tokenizer_diff: missing $model" >&2; status=1; continue; }
  "$tmp/tok" "$model" "$tmp/texts" > "$tmp/ref" 2>/dev/null
  "$MINE" "$model" "$tmp/texts" > "$tmp/got"
  python3 - "$(basename "$model")" "$tmp/texts" "$tmp/ref" "$tmp/got" <<'PY' || status=1
import sys
name, texts, ref, got = sys.argv[1:]
texts = open(texts, "rb").read().split(b"\n@@@\n")
ref, got = open(ref).read().splitlines(), open(got).read().splitlines()
if not (len(ref) == len(got) == len(texts)):
    sys.exit(f"{name}: {len(texts)} texts but {len(ref)} reference and {len(got)} minnow lines")
bad = [i for i in range(len(texts)) if ref[i] != got[i]]
print(f"{name}: {len(texts) - len(bad)}/{len(texts)} identical")
for i in bad[:3]:
    print(f"  {texts[i][:120]!r}\n    llama.cpp {ref[i][:160]}\n    minnow    {got[i][:160]}")
sys.exit(1 if bad else 0)
PY
done
exit $status
