"""Feature-by-feature comparison of minnow's Jinja engine with Python's jinja2 (HF settings).

Each snippet is rendered by both; outputs must match byte for byte. Snippets that jinja2 rejects must make
minnow fail too (exit 1, one-line `error:` message), never crash.
"""
import json
import os
import subprocess

import pytest

from test_jinja_templates import FIXED_DATE, MINNOW, make_env

VARS = {
    "messages": [
        {"role": "system", "content": "  Sys prompt  "},
        {"role": "user", "content": "Hello World"},
        {"role": "assistant", "content": "Hi!", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "user", "content": "Ünïcödé 世界 🙂"},
    ],
    "add_generation_prompt": True,
    "bos_token": "<s>",
    "eos_token": "</s>",
    "tools": None,
    "nums": [3, 1, 2, -5, 10],
    "floats": [1.0, 2.5, -0.1, 1e20, 1.5e-7, 100.0, 0.0],
    "words": ["banana", "Apple", "cherry", "apple"],
    "d": {"b": 2, "a": 1, "c": {"x": [1, 2]}},
    "s": "  Hello, World! hello  ",
    "empty": [],
    "nested": [{"name": "x", "v": 1, "t": "a"}, {"name": "y", "v": None, "t": "b"}, {"name": "z", "t": "a"}],
    "flag": True,
    "nothing": None,
}

SNIPPETS = [
    # output and literals
    "{{ 1 }} {{ 1.0 }} {{ -2.50 }} {{ 1e3 }} {{ 'a' }} {{ \"b\" }} {{ true }} {{ True }} {{ none }} {{ None }}",
    "{{ [1, 'a', none, true, 1.5] }} {{ (1, 2) }} {{ (1,) }} {{ {'k': 'v', 'n': [1]} }} {{ () }}",
    "{{ floats }} {{ 1/3 }} {{ 2/2 }} {{ 10**18 }} {{ (-1)**5 }} {{ 0**0 }} {{ 2**0.5 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.0001 }}",
    "{{ 'it\\'s' }} {{ [\"it's\", 'say \"x\"', 'both \\' \"'] }} {{ ['tab\\there', 'nl\\n', 'é', '\\x01'] }}",
    "{{ 'adjacent' 'strings' }} {{ '\\u00e9\\x41\\101' }}",
    # arithmetic
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** 10 }}",
    "{{ 1 + 2 * 3 - 4 / 2 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }}",
    "{{ 1 ~ 2 ~ none ~ true }} {{ 'x' ~ undefined_var ~ 'y' }} {{ true + 1 }} {{ 1 == 1.0 }} {{ true == 1 }}",
    # comparisons and logic
    "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 != 2 }} {{ 'a' == 'a' }}",
    "{{ 'ell' in 'hello' }} {{ 2 in nums }} {{ 'a' in d }} {{ 'z' not in d }} {{ not 1 in nums }} {{ 5 not in nums }}",
    "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ [] or none }} {{ '' and 1 }} {{ not none }} {{ not not 'a' }}",
    "{{ 'y' if flag else 'n' }} {{ 'y' if nothing else 'n' }} {{ 'y' if nothing }}|{{ 1 if 0 else 2 if 0 else 3 }}",
    # attribute / item access
    "{{ d.a }} {{ d['b'] }} {{ d.c.x[1] }} {{ d.c['x'][-1] }} {{ messages[0].role }} {{ messages[-1]['content'] }}",
    "{{ d.missing }}|{{ d['missing'] }}|{{ nums[100] }}|{{ messages[0].nope is defined }}|{{ nums.0 }}",
    "{{ d.items }}"[:0] + "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 5) }} {{ d.keys() | list }} {{ d.values() | list }}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}",
    # slicing
    "{{ nums[1:3] }} {{ nums[::-1] }} {{ nums[-2:] }} {{ nums[:-2] }} {{ nums[::2] }} {{ nums[10:] }} {{ nums[-100:2] }}",
    "{{ 'hello'[1:4] }} {{ 'hello'[::-1] }} {{ 'Ünïcödé'[1:3] }} {{ 'Ünïcödé'[-1] }} {{ 'abc'[5:] }}|{{ nums[4:1:-1] }}",
    # tests
    "{{ x is defined }} {{ nums is defined }} {{ x is undefined }} {{ nothing is none }} {{ 1 is not none }}",
    "{{ 's' is string }} {{ 1 is string }} {{ d is mapping }} {{ nums is mapping }} {{ nums is iterable }} {{ 1 is iterable }}",
    "{{ 's' is sequence }} {{ d is sequence }} {{ 1 is number }} {{ 1.5 is number }} {{ true is number }} {{ 's' is number }}",
    "{{ 1 is integer }} {{ 1.0 is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ 1 is boolean }} {{ true is true }} {{ 0 is false }} {{ false is false }}",
    "{{ 2 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 1 is equalto 1 }} {{ 1 is eq 2 }} {{ 2 is in nums }} {{ 'abc' is lower }} {{ 'ABC' is upper }}",
    "{{ range is callable }} {{ d is callable }} {{ nothing is sameas none }} {{ 3 is gt 2 }} {{ 3 is lt 2 }} {{ 3 is ge 3 }} {{ 3 is ne 3 }}",
    # filters
    "{{ s | trim }}|{{ s | upper }}|{{ s | lower }}|{{ s | length }}|{{ 'Ünï' | length }}|{{ nums | count }}|{{ d | length }}",
    "{{ x | default('dflt') }} {{ nothing | default('dflt') }} {{ '' | default('dflt', true) }} {{ 0 | d('z', boolean=true) }} {{ 'v' | d('z') }}",
    "{{ nums | join(', ') }} {{ words | join }} {{ nested | join('|', attribute='name') }} {{ 'abc' | join('-') }}",
    "{{ s | replace('l', 'L') }} {{ s | replace('l', 'L', 2) }} {{ 'aaa' | replace('', '-') }}",
    "{{ d | items | list }} {{ undefined_thing | items | list }} {{ d | dictsort }} {{ d | dictsort(reverse=true) }}",
    "{{ nested | selectattr('t', 'equalto', 'a') | map(attribute='name') | list }} {{ nested | rejectattr('v') | list | length }}",
    "{{ nested | selectattr('v', 'defined') | list | length }} {{ nested | selectattr('v', 'none') | map(attribute='name') | join }}",
    "{{ nested | selectattr('v', 'undefined') | map(attribute='name') | first }} {{ nested | map(attribute='v', default=0) | list }}",
    "{{ words | map('upper') | list }} {{ nums | select('odd') | list }} {{ nums | reject('even') | list }} {{ words | select('lower') | list }}",
    "{{ nums | first }} {{ nums | last }} {{ 'abc' | first }} {{ empty | first }}|{{ nums | min }} {{ nums | max }} {{ nums | sum }}",
    "{{ 12 | string }} {{ '42' | int }} {{ '4.7' | int }} {{ 'x' | int }} {{ 'x' | int(7) }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 2 | float }} {{ 'q' | float }}",
    "{{ 'abc' | list }} {{ d | list }} {{ 'hello world' | capitalize }} {{ 'hELLO wORLD-foo(bar' | title }} {{ words | unique | list }}",
    "{{ 'a\\nb\\n\\nc' | indent }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent('> ', blank=true) }}|{{ 'x\\ny' | indent(first=true) }}",
    "{{ words | sort | list }} {{ words | sort(reverse=true) | list }} {{ words | sort(case_sensitive=true) | list }} {{ nested | sort(attribute='name', reverse=true) | map(attribute='name') | join }}",
    "{{ -3 | abs }} {{ -2.5 | abs }} {{ 2.567 | round }} {{ 2.567 | round(2) }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ -0.5 | round }} {{ 7 | round }} {{ 1234.5 | round(-2) }} {{ 2.5 | round(0, 'floor') }} {{ 'one two, three' | wordcount }}",
    "{{ nums | reverse | list }} {{ 'abc' | reverse }} {{ '<a & \"b\">' | e }} {{ '<b>' | safe }} {{ ('<x>' | safe) + '<y>' }} {{ ('<x>' | safe) ~ '<y>' }}",
    "{{ d | tojson }} {{ messages[2] | tojson }} {{ 'é\"\\n\\t\\u0001' | tojson }} {{ floats | tojson }} {{ [none, true, false] | tojson }}",
    "{{ d | tojson(indent=2) }}|{{ empty | tojson(indent=2) }}|{{ {} | tojson(indent=4) }}|{{ d | tojson(sort_keys=true) }}|{{ d | tojson(separators=(',', ':')) }}",
    "{{ 'Ünï' | tojson(ensure_ascii=true) }} {{ '🙂' | tojson(ensure_ascii=true) }} {{ nums | tojson(indent='\\t') }}",
    "{{ nested | batch(2) | list }} {{ d | attr('keys') is callable }}",
    # string methods
    "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ '--a--'.lstrip('-') }}|{{ '--a--'.rstrip('-') }}",
    "{{ 'a,b,,c'.split(',') }} {{ ' a  b c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a b c'.split(none, 1) }} {{ 'a,b,c'.rsplit(',', 1) }}",
    "{{ s.startswith('  He') }} {{ s.endswith('lo  ') }} {{ 'file.py'.endswith(('.js', '.py')) }} {{ 'abc'.startswith(('x', 'y')) }}",
    "{{ 'hello world'.title() }} {{ 'HeLLo'.lower() }} {{ 'hello'.upper() }} {{ 'hello'.capitalize() }} {{ 'a-b c'.title() }} {{ 'ﬁx straße'.upper() }}",
    "{{ 'aXbXc'.replace('X', '-') }} {{ 'aXbXc'.replace('X', '-', 1) }} {{ 'hello'.find('l') }} {{ 'héllo'.find('l') }} {{ 'hello'.find('z') }} {{ 'hello'.count('l') }}",
    "{{ ', '.join(words) }} {{ '{} and {}'.format('a', 1) }} {{ '{1}{0}'.format('a', 'b') }} {{ '{x}!'.format(x=3) }} {{ '{{}}'.format() }}",
    "{{ 'l1\\nl2\\r\\nl3'.splitlines() }} {{ '123'.isdigit() }} {{ 'abc'.isalpha() }} {{ '  '.isspace() }}",
    "{{ '%s|%5s|%-5s|%.2s|%r' % ('a', 'b', 'c', 'def', 'q') }} {{ '%d %i %05d %+d %x %X %o' % (3.9, -2, 42, 7, 255, 255, 8) }}",
    "{{ '%.3f %e %g %10.2f %%' % (3.14159, 12345.678, 0.0001, 2.5) }} {{ '%(a)s-%(b)d' % {'a': 'x', 'b': 2} }} {{ '%s' % nums }}",
    "{{ '%s and %s' | format('x', 1) }} {{ '%(k)s' | format(k='v') }} {{ 'no args' % () }} {{ '%c%c' % (72, 'i') }}",
    "{{ 2.0 is even }} {{ 3.0 is odd }} {{ -3 is odd }} {{ 7.5 is divisibleby 2.5 }} {{ d is lower }} {{ nums is upper }} {{ x is callable }}",
    "{{ [x, none] }} {{ nested | map(attribute='v') | list }} {{ 'plain' % nums }} {{ 'plain' % d }} {{ '%s' % x }}|{{ 'p' % x }}",
    "{{ (d.c * 0) if false else 'ok' }} {{ nums * 2 }} {{ 2 * 'ab' }} {{ true * 3 }}",
    # list/dict methods
    "{% set l = [1] %}{% set _ = l.append(2) %}{{ l }}{% set _ = l.extend([3, 4]) %}{{ l }} {{ l.pop() }} {{ l }} {{ l.pop(0) }} {{ l }} {{ l.index(3) }}",
    "{% set m = {'a': 1} %}{% set _ = m.update({'b': 2}) %}{{ m }} {{ m.pop('a') }} {{ m }} {{ m.setdefault('c', 3) }} {{ m }}",
    # statements: if / for / loop
    "{% if 0 %}a{% elif none %}b{% elif 'x' %}c{% else %}d{% endif %}{% if [] %}e{% else %}f{% endif %}",
    "{% for n in nums %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}",
    "{% for n in nums %}{{ loop.previtem | default('-') }}>{{ n }}>{{ loop.nextitem | default('-') }} {{ loop.cycle('a', 'b') }};{% endfor %}",
    "{% for n in nums if n > 1 %}{{ n }}{{ ',' if not loop.last }}{% endfor %}|{% for n in empty %}x{% else %}none{% endfor %}",
    "{% for n in nums %}{% if n == 2 %}{% break %}{% endif %}{{ n }}{% endfor %}|{% for n in nums %}{% if n < 2 %}{% continue %}{% endif %}{{ n }}{% endfor %}",
    "{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %} {% for c in 'héllo' %}[{{ c }}]{% endfor %} {% for k in d %}{{ k }}{% endfor %}",
    "{% for i in range(3) %}{% for j in range(i) %}{{ i }}{{ j }} {% endfor %}{% endfor %}|{{ range(2, 10, 3) | list }}|{{ range(5, 0, -2) | list }}",
    "{% for x in undefined_list %}x{% else %}empty{% endfor %}",
    # scoping, set, namespace
    "{% set x = 1 %}{% for i in range(2) %}{% set x = x + 10 %}{{ x }} {% endfor %}{{ x }}",
    "{% for i in range(3) %}{% if i == 1 %}[{{ y }}]{% endif %}{% set y = i %}{% endfor %}",
    "{% set ns = namespace(c=0, found=false) %}{% for i in range(4) %}{% set ns.c = ns.c + i %}{% endfor %}{{ ns.c }} {{ ns.found }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set t = (3, 4) %}{% set c, e = t %}{{ c }}{{ e }}",
    "{% set block %}inner {{ 1 + 1 }}\n{% endset %}[{{ block }}] {% set up | upper %}shout{% endset %}{{ up }}",
    "{% if true %}{% set leaked = 'yes' %}{% endif %}{{ leaked }}",
    # macros
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', '?') }} {{ greet(punct='.', name='Cy') }}",
    "{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(4) }}",
    "{% set g = 'global' %}{% macro show() %}{{ g }}{% endmacro %}{{ show() }}{% set g = 'changed' %} {{ show() }}",
    "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}",
    "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inside{% endcall %}",
    "{% macro wrap2() %}<{{ caller('z') }}>{% endmacro %}{% call(v) wrap2() %}got {{ v }}{% endcall %}",
    "{% filter upper %}filtered {{ 'text' }}{% endfilter %}",
    # whitespace control, comments, raw
    "a  {{- ' b ' -}}  c\n  {%- if true %}\n  d\n  {% endif -%}\n  e {# comment #}\nf {#- trimmed -#} g",
    "line1\n    {% if true %}\n    kept\n    {% endif %}\nline2\n  {%+ if true %}plus{% endif %}\n{% if true +%}\nx{% endif %}",
    "{% raw %}{{ not rendered }} {% if %}{% endraw %} after\n{% raw -%}  spaced  {%- endraw %}",
    "{# comment only #}\n{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n",
    "trailing newline kept?\n",
    "{{ messages | length }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + eos_token }}{% endif %}{% endfor %}",
    "{% generation %}gen {{ 1 }}{% endgeneration %}",
    "{% set a = 'outer' %}{% with a = 'inner', b = a %}{{ a }} {{ b }}{% set c = 1 %}{% endwith %} {{ a }} {{ c }}",
    "{{ strftime_now('%Y-%m-%d %d %b %B %A %H:%M') }}",
    # undefined behaviour
    "[{{ undefined_var }}] {{ undefined_var | length }} {{ undefined_var | list }} {{ undefined_var is iterable }} {{ undefined_var == undefined_var }}",
    "{{ undefined_var | upper }}|{{ undefined_var | trim }}|{{ undefined_var | string }}|{{ 'a' in undefined_var }}",
]

ERRORS = [
    "{{ undefined_var.attr }}",
    "{{ undefined_var['k'] }}",
    "{{ undefined_var + 1 }}",
    "{{ raise_exception('custom failure') }}",
    "{{ 1 + 'a' }}",
    "{% if %}",
    "{% for x in %}{% endfor %}",
    "{% if true %}unclosed",
    "{{ 'unterminated }}",
    "{{ 1 / 0 }}",
    "{{ 1 // 0 }}",
    "{{ nums | no_such_filter }}",
    "{% include 'other.jinja' %}",
    "{% set x = 1 %}{{ x.y.z }}",
    "{{ none.attr.more }}",
    "{% macro f() %}{% endmacro %}{{ f()() }}",
    "{{ nothing | length }}",
    "{% for a, b in [1, 2] %}{% endfor %}",
    "{{ d | tojson(indent=x.y) }}",
    "{{ }}",
    "{{ '%s %s' % ('one',) }}",
    "{{ '%s' % ('a', 'b') }}",
    "{{ '%d' % 'x' }}",
    "{{ d * 2 }}",
    "{{ nums[1:] | indent }}",
    "{{ messages | unique | list }}",
    "{% set n = 5 %}{{ n[1:] }}",
    "{% endfor %}",
]


def random_snippets():
    """Randomised slicing and arithmetic (fixed seed): Python itself is the reference."""
    import random
    rng = random.Random(7)
    opt = lambda lo, hi: "" if rng.random() < 0.25 else str(rng.randint(lo, hi))  # noqa: E731
    out = []
    for _ in range(4):
        parts = []
        for _ in range(60):
            seq = rng.choice(["nums", "'Ünïcödé!'", "[1, 2, 3, 4, 5, 6, 7]", "''", "[]", "'ab'"])
            step = opt(-3, 3)
            if step == "0":
                step = "1"
            parts.append(f"{{{{ {seq}[{opt(-9, 9)}:{opt(-9, 9)}:{step}] }}}}")
        out.append(" ".join(parts))
    for _ in range(4):
        parts = []
        for _ in range(60):
            a = rng.choice([str(rng.randint(-20, 20)), f"{rng.uniform(-20, 20):.3f}"])
            b = rng.choice([str(rng.choice([-7, -3, -2, -1, 1, 2, 3, 5])), f"{rng.choice([-2.5, 0.5, 1.25, 3.0])}"])
            op = rng.choice(["+", "-", "*", "/", "//", "%"])
            parts.append(f"{{{{ ({a}) {op} ({b}) }}}}")
        out.append(" ".join(parts))
    return out


SNIPPETS += random_snippets()


def render_minnow(src, tmp_path):
    tfile = tmp_path / "t.jinja"
    tfile.write_bytes(src.encode("utf-8"))
    mfile = tmp_path / "m.json"
    doc = dict(VARS)
    doc.pop("add_generation_prompt")
    doc.pop("bos_token")
    doc.pop("eos_token")
    mfile.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    env = dict(os.environ, MINNOW_FIXED_DATE=FIXED_DATE.strftime("%Y-%m-%d %H:%M:%S"))
    cmd = [MINNOW, "template", "--template-file", str(tfile), "--messages", str(mfile),
           "--bos-token", VARS["bos_token"], "--eos-token", VARS["eos_token"]]
    return subprocess.run(cmd, capture_output=True, env=env, timeout=30)


@pytest.mark.parametrize("src", SNIPPETS, ids=[f"s{k:03d}" for k in range(len(SNIPPETS))])
def test_snippet_matches_jinja2(src, tmp_path):
    expected = make_env().from_string(src).render(**json.loads(json.dumps(VARS)))
    r = render_minnow(src, tmp_path)
    assert r.returncode == 0, r.stderr.decode("utf-8", "replace")
    assert r.stdout.decode("utf-8") == expected


@pytest.mark.parametrize("src", ERRORS, ids=[f"e{k:03d}" for k in range(len(ERRORS))])
def test_error_matches_jinja2(src, tmp_path):
    with pytest.raises(Exception):
        make_env().from_string(src).render(**json.loads(json.dumps(VARS)))
    r = render_minnow(src, tmp_path)
    assert r.returncode == 1
    err = r.stderr.decode("utf-8", "replace")
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert r.stdout == b""


def test_unsupported_construct_names_line(tmp_path):
    r = render_minnow("line one\n{% if true %}\n{% include 'x' %}\n{% endif %}", tmp_path)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "include" in err and "line 3" in err, err


def test_raise_exception_message(tmp_path):
    r = render_minnow("{{ raise_exception('Only user and assistant roles') }}", tmp_path)
    assert r.returncode == 1 and "Only user and assistant roles" in r.stderr.decode()
