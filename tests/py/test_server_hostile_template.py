"""`minnow serve --chat-template-file hostile.jinja` (issue 18): a chat template that hangs, traps, recurses or
grows without bound (chosen here by the last message's text) gets a 4xx within 10 s per request; the process
stays up, /health answers meanwhile, its only slot is free again (a normal /v1/completions and a normal chat
request then succeed)."""
import threading

import pytest

from server_util import Server, smol_model

HOSTILE = r"""
{%- set c = messages[-1].content -%}
{%- if c == 'loops' -%}
  {%- for a in range(1000000) %}{% for b in range(1000000) %}{{ '' }}{% endfor %}{% endfor -%}
{%- elif c == 'fpe' -%}
  {{ (-9223372036854775807 - 1) // -1 }}
{%- elif c == 'divisible' -%}
  {{ (-9223372036854775807 - 1) is divisibleby(-1) }}{{ -(-9223372036854775807 - 1) }}
{%- elif c == 'macro' -%}
  {%- macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(100) -}}
{%- elif c == 'doubling' -%}
  {%- set ns = namespace(s='x') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s -}}
{%- elif c == 'repeat' -%}
  {{ ([1] * 2**28) | length }}
{%- elif c == 'json' -%}
  {{ messages | tojson(indent=10**12) }}
{%- else -%}
  {%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif -%}
{%- endif -%}
"""

CASES = ["loops", "fpe", "divisible", "macro", "doubling", "repeat", "json"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    t = tmp_path_factory.mktemp("tmpl") / "hostile.jinja"
    t.write_text(HOSTILE)
    s = Server(smol_model(), ["--parallel", "1", "-c", "256", "--chat-template-file", str(t)])
    yield s
    s.stop()


def chat(srv, text, timeout):
    return srv.post("/v1/chat/completions", {"messages": [{"role": "user", "content": text}], "max_tokens": 2},
                    timeout=timeout)


@pytest.mark.parametrize("case", CASES)
def test_hostile_request_gets_4xx_and_the_server_stays_up(srv, case):
    st, body = chat(srv, case, timeout=10)  # st == -1 (no answer in 10 s) fails
    assert 400 <= st < 500, (st, body)
    assert "template" in body
    assert srv.proc.poll() is None, "".join(srv.log)
    assert srv.get("/health", timeout=5)[0] == 200
    st, body = srv.post("/v1/completions", {"prompt": "The capital of France is", "max_tokens": 2}, timeout=60)
    assert st == 200, body


def test_health_answers_while_a_hostile_render_runs(srv):
    result = {}
    t = threading.Thread(target=lambda: result.update(r=chat(srv, "loops", timeout=10)))
    t.start()
    try:
        st, _ = srv.get("/health", timeout=3)
        assert st == 200
    finally:
        t.join(15)
    assert 400 <= result["r"][0] < 500, result


def test_normal_chat_through_the_same_template_still_works(srv):
    st, body = chat(srv, "hello", timeout=60)
    assert st == 200, body
