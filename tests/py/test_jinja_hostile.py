"""Hostile chat templates through `minnow template` (issue 18): every case in fuzz/jinja_corpus (the probe's
crashes, hangs, memory blow-ups and overflows) and the hostile inputs around it (deep --messages JSON,
/dev/zero, a directory or a FIFO as the template file) end with exit 1 and a one-line `error:` message, under
a 4 GB address-space limit. The subprocess timeout is only a hang guard (budgets default to 5 s a render).
"""
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from test_jinja_templates import MINNOW

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "jinja_corpus"
HOSTILE = sorted(CORPUS.glob("hostile_*.jinja"))
HANG_GUARD_S = 60


def run_limited(args, cwd):
    """minnow ARGS under `ulimit -v 4000000` (KiB); returns (exit code, stdout, stderr)."""
    cmd = "ulimit -v 4000000; exec " + " ".join(shlex.quote(a) for a in [str(Path(MINNOW).resolve())] + args)
    p = subprocess.run(["bash", "-c", cmd], cwd=cwd, capture_output=True, timeout=HANG_GUARD_S)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def assert_clean_error(rc, err, what=""):
    assert rc == 1, f"expected exit 1 (clean error), got {rc}: {err[-500:]}"
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-500:]
    assert what in lines[0], lines[0]


@pytest.fixture
def messages(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    return p


def test_the_corpus_holds_every_case_of_the_issue():
    names = {p.stem for p in HOSTILE}
    for n in ["floordiv_min_by_minus1", "divisibleby_minus1", "plus_chain_20000", "filter_chain_20000",
              "attr_chain_20000", "nested_range_loops", "macro_twice_per_level", "string_doubling",
              "list_doubling", "list_repeat_2_28", "string_repeat_loop", "huge_join", "tojson_indent",
              "unary_minus_min", "abs_min", "sum_overflow", "range_length_overflow"]:
        assert "hostile_" + n in names


@pytest.mark.parametrize("path", HOSTILE, ids=[p.stem for p in HOSTILE])
def test_hostile_template_is_a_clean_error(path, messages, tmp_path):
    rc, out, err = run_limited(["template", "--messages", str(messages), "--template-file", str(path)], tmp_path)
    assert_clean_error(rc, err, "template")


def test_deeply_nested_messages_are_refused(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"messages": [{"role": "user", "content": ' + "[" * 30000 + "]" * 30000 + "}]}")
    t = tmp_path / "t.jinja"
    t.write_text("{{ messages | length }}")
    rc, out, err = run_limited(["template", "--messages", str(deep), "--template-file", str(t)], tmp_path)
    assert_clean_error(rc, err, "nested too deeply")


def test_template_file_must_be_a_bounded_regular_file(messages, tmp_path):
    args = ["template", "--messages", str(messages), "--template-file"]
    rc, _, err = run_limited(args + ["/dev/zero"], tmp_path)
    assert_clean_error(rc, err, "not a regular file")
    rc, _, err = run_limited(args + [str(tmp_path)], tmp_path)
    assert_clean_error(rc, err, "is a directory")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    rc, _, err = run_limited(args + [str(fifo)], tmp_path)
    assert_clean_error(rc, err, "not a regular file")
    big = tmp_path / "big.jinja"
    big.write_text("x" * (2 << 20))
    rc, _, err = run_limited(args + [str(big)], tmp_path)
    assert_clean_error(rc, err, "larger than")
    rc, _, err = run_limited(["template", "--messages", "/dev/zero", "--template-file", str(big)], tmp_path)
    assert_clean_error(rc, err, "messages file")


def test_a_normal_template_still_renders(messages, tmp_path):
    t = tmp_path / "t.jinja"
    t.write_text("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
    rc, out, err = run_limited(["template", "--messages", str(messages), "--template-file", str(t)], tmp_path)
    assert rc == 0, err
    assert out == b"<user>hi"
