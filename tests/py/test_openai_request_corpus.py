"""The OpenAI request fuzzer's seed corpus (tests/asan/make_openai_seeds.py: valid bodies and the hostile
shapes of issue 18) through the request parsers in-process with build/bin/openai_request_check: every body is
parsed or rejected with a 4xx, nothing else escapes, within bounded time and memory. The libFuzzer run
itself is the ctest entry openai_request_fuzz (clang only)."""
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("MINNOW_BIN_DIR", SRC / "build" / "bin"))
CHECK = BIN_DIR / "openai_request_check"


def limited():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_seed_corpus_is_parsed_or_rejected_with_4xx(tmp_path):
    if not CHECK.exists():
        pytest.skip(f"{CHECK} not built")
    subprocess.run([sys.executable, str(SRC / "tests" / "asan" / "make_openai_seeds.py"), str(tmp_path)], check=True)
    files = sorted(str(p) for p in tmp_path.iterdir())
    assert len(files) > 30
    p = subprocess.run([str(CHECK), *files], capture_output=True, text=True, timeout=120, preexec_fn=limited)
    lines = p.stdout.splitlines()
    bad = [ln for ln in lines if not ln.endswith("\tdone")]
    assert p.returncode == 0 and not bad and len(lines) == len(files), p.stdout + p.stderr


def test_checker_reports_a_non_json_body_as_handled(tmp_path):
    if not CHECK.exists():
        pytest.skip(f"{CHECK} not built")
    f = tmp_path / "x.json"
    f.write_bytes(b"\x00not json")
    p = subprocess.run([str(CHECK), str(f)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip().endswith("\tdone"), p.stdout
