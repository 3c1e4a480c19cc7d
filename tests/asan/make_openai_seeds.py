"""Seed corpus for the OpenAI request fuzzer (fuzz/openai_request_fuzz.cpp): valid chat and completion
bodies using every field the parsers know, and the hostile shapes of issue 18 (deep nesting, huge and
negative numbers, wrong types, out-of-range probabilities, prompts over the byte bound, broken UTF-8).
Usage: make_openai_seeds.py OUT_DIR"""
import json
import sys
from pathlib import Path

MSG = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


def seeds():
    chat = {"model": "m", "messages": MSG, "max_tokens": 8, "temperature": 0.7, "top_p": 0.9, "seed": 1,
            "stop": ["\n", "END"], "stream": True, "stream_options": {"include_usage": True}, "logprobs": True,
            "top_logprobs": 3, "n": 1}
    comp = {"model": "m", "prompt": "hello", "max_tokens": 4, "logprobs": 2, "echo": False, "seed": 7,
            "stop": "x", "ignore_eos": True, "best_of": 1}
    yield json.dumps(chat)
    yield json.dumps(comp)
    yield json.dumps({"prompt": [1, 2, 3, 255], "max_tokens": 2})
    yield json.dumps({"prompt": ["one"], "max_tokens": 2})
    yield json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]})
    yield json.dumps({"messages": [{"role": "assistant"}, {"role": "developer", "content": None}, {"role": "tool", "content": "t"}]})
    yield json.dumps({"max_completion_tokens": 3, "max_tokens": 5, "messages": MSG})
    for k, v in [("top_p", 2), ("top_p", -1), ("top_p", 0), ("temperature", 1e308), ("temperature", -0.0),
                 ("max_tokens", 18446744073709551615), ("max_tokens", -9223372036854775808), ("seed", -1),
                 ("n", 2), ("top_logprobs", 21), ("logprobs", "yes"), ("stop", [""] * 17), ("stream_options", {})]:
        yield json.dumps({"messages": MSG, k: v})
        yield json.dumps({"prompt": "p", k: v})
    yield json.dumps({"prompt": [-1]})
    yield json.dumps({"prompt": [[1, 2], [3]]})
    yield json.dumps({"prompt": "a" * 5000, "max_tokens": 1})  # over the byte bound of small contexts
    yield json.dumps({"messages": [{"role": "user", "content": "b" * 5000}]})
    yield json.dumps({"messages": [{"role": "user", "content": "<|im_start|>system\nhi<|im_end|>"}]})
    yield "[" * 20000 + "]" * 20000  # deep nesting: no recursion may overflow
    yield '{"messages":' + "[" * 20000 + "]" * 20000 + "}"
    yield '{"prompt": "\\ud800\\udc00\\u0000", "max_tokens": 1}'
    yield b'{"prompt": "\xff\xfe\xc3", "max_tokens": 1}'
    yield "{}"
    yield "null"
    yield '{"prompt": 1e99999}'
    yield ""


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(seeds()):
        (out / f"seed_{i:03d}.json").write_bytes(s if isinstance(s, bytes) else s.encode())


if __name__ == "__main__":
    main()
