"""minnow's Jinja engine against Python's jinja2 (Hugging Face's chat-template settings), byte for byte.

Every template in ../shared/templates x a set of conversations x add_generation_prompt on/off. Where jinja2
raises, minnow must fail too (exit 1, one error line; the template's own raise_exception message included). strftime_now uses a fixed date in both (env MINNOW_FIXED_DATE).
"""
import datetime
import json
import os
import pathlib
import subprocess

import pytest

jinja2 = pytest.importorskip("jinja2")
from jinja2.ext import Extension, loopcontrols  # noqa: E402

MINNOW = os.environ.get("MINNOW_BIN", "build/bin/minnow")
SHARED = pathlib.Path(os.environ.get("MINNOW_SHARED_DIR", pathlib.Path(__file__).resolve().parents[2] / ".." / "shared"))
TEMPLATES = sorted((SHARED / "templates").glob("*.jinja"))
FIXED_DATE = datetime.datetime(2026, 1, 15, 9, 30, 0)
BOS, EOS = "<s>", "</s>"


class GenerationTracker(Extension):
    """HF's AssistantTracker: {% generation %}...{% endgeneration %} renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_DATE.strftime(fmt)

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. Paris"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city"],
            },
        },
    }
]

CONVERSATIONS = {
    "user_only": [{"role": "user", "content": "Hello"}],
    "system_user": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
    "multi_turn": [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke."},
    ],
    "system_multi_assistant_last": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6"},
    ],
    "assistant_last": [
        {"role": "user", "content": "Say yes."},
        {"role": "assistant", "content": "Yes."},
    ],
    "unicode": [
        {"role": "system", "content": "Réponds en français — s'il te plaît. 🙂"},
        {"role": "user", "content": "Привет, 世界! 👋 café naïve “quotes” ñ"},
        {"role": "assistant", "content": "こんにちは 🌍 Ünïcödé"},
        {"role": "user", "content": "ありがとう\u3000(ideographic space) and tab\tend"},
    ],
    "template_syntax": [
        {"role": "user", "content": "Render {{ messages }} and {% if x %}y{% endif %} {# not a comment #}"},
        {"role": "assistant", "content": "Literal {{ and }} and {%- raw -%} stay\nas text.\n"},
        {"role": "user", "content": "line1\nline2\n\n  indented\n"},
    ],
    "whitespace_quotes": [
        {"role": "user", "content": "  padded with spaces  \n\n"},
        {"role": "assistant", "content": "He said \"hi\" and 'bye' \\ C:\\temp\\new"},
        {"role": "user", "content": "</s><|im_end|><|eot_id|> tokens as text"},
    ],
    "long": [
        m
        for k in range(4)
        for m in (
            {"role": "user", "content": f"Question number {k}?"},
            {"role": "assistant", "content": f"Answer number {k}."},
        )
    ]
    + [{"role": "user", "content": "Last question?"}],
    "tools": {
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "What's the weather in Paris?"},
        ],
        "tools": TOOLS,
    },
    "tool_calls": {
        "messages": [
            {"role": "user", "content": "What's the weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp\": 21.5}"},
            {"role": "user", "content": "Thanks!"},
        ],
        "tools": TOOLS,
    },
}

ENV = make_env()
_compiled = {}


def reference(path, variables):
    if path not in _compiled:
        try:
            _compiled[path] = ENV.from_string(path.read_text(encoding="utf-8"))
        except Exception as e:  # jinja2 refuses the template itself
            _compiled[path] = e
    t = _compiled[path]
    if isinstance(t, Exception):
        raise t
    return t.render(**variables)


CASES = [
    pytest.param(t, conv, gen, id=f"{t.stem}-{conv}-{'gen' if gen else 'nogen'}")
    for t in TEMPLATES
    for conv in CONVERSATIONS
    for gen in (True, False)
]


@pytest.mark.parametrize("template,conv,gen", CASES)
def test_template_matches_jinja2(template, conv, gen, tmp_path):
    data = CONVERSATIONS[conv]
    doc = data if isinstance(data, dict) else {"messages": data}
    variables = {"messages": doc["messages"], "add_generation_prompt": gen, "bos_token": BOS, "eos_token": EOS,
                 "tools": doc.get("tools")}
    refused = None
    try:
        expected = reference(template, json.loads(json.dumps(variables)))
    except Exception as e:
        refused = e
    mfile = tmp_path / "m.json"
    mfile.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    cmd = [MINNOW, "template", "--template-file", str(template), "--messages", str(mfile),
           "--bos-token", BOS, "--eos-token", EOS]
    if not gen:
        cmd.append("--no-generation-prompt")
    env = dict(os.environ, MINNOW_FIXED_DATE=FIXED_DATE.strftime("%Y-%m-%d %H:%M:%S"))
    r = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
    if refused is not None:
        # Where jinja2 raises, minnow must refuse too: exit 1 with one clear error line, no output.
        err = r.stderr.decode("utf-8", "replace")
        why = f"jinja2 raises {type(refused).__name__}: {str(refused)[:120]}"
        assert r.returncode == 1, f"{why}; minnow exits {r.returncode} with {r.stdout[:200]!r}"
        assert len([l for l in err.splitlines() if l.startswith("error: ")]) == 1, err
        if type(refused) is jinja2.exceptions.TemplateError:  # the template's own raise_exception(msg)
            assert str(refused) in err
        return
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    got = r.stdout.decode("utf-8")
    assert got == expected
