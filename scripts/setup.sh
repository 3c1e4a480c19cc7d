#!/usr/bin/env bash
# Installs whatever is missing for building and testing minnow (Debian 12 + PyPI). Idempotent.
set -euo pipefail
need_apt=()
for pkg in build-essential cmake pkg-config nlohmann-json3-dev libcpp-httplib-dev libpcre2-dev \
           libutf8proc-dev libfmt-dev libgtest-dev libgmock-dev libbenchmark-dev clang libclang-rt-14-dev python3-pip unzip; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
PY=${PYTHON:-python3}
missing_py=$($PY - <<'PYEOF'
import importlib.util
mods = {"gguf": "gguf", "numpy": "numpy", "jinja2": "jinja2", "pytest": "pytest", "openai": "openai", "requests": "requests", "regex": "regex"}
print(" ".join(pkg for mod, pkg in mods.items() if importlib.util.find_spec(mod) is None))
PYEOF
)
if [ -n "$missing_py" ]; then
  $PY -m pip install -q $missing_py || $PY -m pip install -q --break-system-packages $missing_py
fi
