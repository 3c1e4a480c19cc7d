"""`minnow serve` under load with SmolLM2-135M on the CPU: 32 concurrent streaming clients x 64 tokens with zero
errors (throughput vs one client, TTFT / per-token latency reported, nothing asserted on timing), batch
invariance of temperature-0 outputs, and disconnects followed by 200 requests leaving no leaked slots and flat
memory."""
import json
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from server_util import Server, percentile, smol_model

openai = pytest.importorskip("openai")

N_CLIENTS = 32
N_TOKENS = 64
PROMPTS = [f"Write a short note about topic number {i}: the {w}" for i, w in enumerate(
    "sea sky moon tree river mountain city bread music winter summer garden library train clock forest "
    "island desert bridge castle candle letter market garden2 violin harbor meadow lantern comet glacier "
    "orchard volcano".split())]
assert len(PROMPTS) >= N_CLIENTS


@pytest.fixture(scope="module")
def srv():
    s = Server(smol_model(), ["--parallel", str(N_CLIENTS), "-c", "256", "--queue", "64"])
    yield s
    code = s.stop()
    assert code == 0, "".join(s.log)


def stream_one(base, prompt, max_tokens):
    """One streaming completion; returns (text, n_tokens, ttft_s, per_token_s, total_s)."""
    client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=600)
    t0 = time.perf_counter()
    first = last = None
    text, n = "", 0
    stream = client.completions.create(model="x", prompt=prompt, max_tokens=max_tokens, temperature=0, stream=True,
                                       stream_options={"include_usage": True}, extra_body={"ignore_eos": True})
    for chunk in stream:
        if chunk.usage is not None:
            n = chunk.usage.completion_tokens
        if chunk.choices and chunk.choices[0].text:
            now = time.perf_counter()
            if first is None:
                first = now
            last = now
            text += chunk.choices[0].text
    t1 = time.perf_counter()
    per_tok = (last - first) / (n - 1) if n > 1 and first is not None else float("nan")
    return text, n, (first - t0) if first else float("nan"), per_tok, t1 - t0


def report(line):
    print(line)
    out = os.environ.get("MINNOW_SERVER_REPORT")
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def test_32_concurrent_clients_zero_errors(srv):
    # Warm-up, then one client alone.
    stream_one(srv.base, PROMPTS[0], 8)
    _, n1, ttft1, tpt1, wall1 = stream_one(srv.base, PROMPTS[0], N_TOKENS)
    assert n1 == N_TOKENS
    single_tps = n1 / wall1
    errors = []
    results = []

    def worker(i):
        try:
            results.append(stream_one(srv.base, PROMPTS[i], N_TOKENS))
        except Exception as e:  # noqa: BLE001 - every failure is counted
            errors.append(repr(e))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(900)
    wall = time.perf_counter() - t0
    assert not errors, errors[:3]
    assert len(results) == N_CLIENTS
    assert all(r[1] == N_TOKENS for r in results), [r[1] for r in results]
    total = sum(r[1] for r in results)
    agg_tps = total / wall
    ttfts = [r[2] for r in results]
    tpts = [r[3] for r in results]
    m = srv.metrics()
    report(f"[server load, CPU, SmolLM2-135M Q4_1] single client: {single_tps:.1f} tok/s "
           f"(TTFT {ttft1 * 1000:.0f} ms, {tpt1 * 1000:.1f} ms/token)")
    report(f"[server load] {N_CLIENTS} clients x {N_TOKENS} tokens: {total} tokens in {wall:.2f} s = "
           f"{agg_tps:.1f} tok/s aggregate ({agg_tps / single_tps:.2f}x single); "
           f"TTFT p50 {percentile(ttfts, 50) * 1000:.0f} ms p99 {percentile(ttfts, 99) * 1000:.0f} ms; "
           f"per-token p50 {percentile(tpts, 50) * 1000:.1f} ms p99 {percentile(tpts, 99) * 1000:.1f} ms; "
           f"mean batch {m['minnow_batch_tokens_total'] / max(1, m['minnow_forward_passes_total']):.1f} tokens/pass")
    assert m["minnow_slots_busy"] == 0


def complete(base, prompt, max_tokens=32):
    client = openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=600)
    r = client.completions.create(model="x", prompt=prompt, max_tokens=max_tokens, temperature=0,
                                  logprobs=1, extra_body={"ignore_eos": True})
    return r.choices[0].text, r.choices[0].logprobs.tokens


def test_batch_invariance_32_concurrent_equals_alone(srv):
    prompts = PROMPTS[:N_CLIENTS]
    alone = [complete(srv.base, p) for p in prompts]
    with ThreadPoolExecutor(N_CLIENTS) as ex:
        together = list(ex.map(lambda p: complete(srv.base, p), prompts))
    m = srv.metrics()
    assert m["minnow_slots_busy"] == 0
    for i, (a, b) in enumerate(zip(alone, together)):
        assert a == b, f"prompt {i}: alone {a[0]!r} vs batched {b[0]!r}"
    # And the batched run really shared forward passes.
    assert m["minnow_batch_tokens_total"] > m["minnow_forward_passes_total"]


def disconnect_mid_stream(port, prompt):
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    body = json.dumps({"prompt": prompt, "max_tokens": 200, "stream": True, "ignore_eos": True}).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while b"data: {" not in got:
        chunk = s.recv(4096)
        assert chunk, "server closed the stream early"
        got += chunk
    s.close()


def test_disconnects_then_200_requests_leave_no_leaks():
    with Server(smol_model(), ["--parallel", "4", "-c", "512"]) as s:
        for i in range(8):
            disconnect_mid_stream(s.port, PROMPTS[i])
        ok = []

        def one(i):
            st, body = s.post("/v1/completions", {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 4})
            ok.append(st == 200)

        with ThreadPoolExecutor(8) as ex:
            list(ex.map(one, range(50)))
        rss_before = s.metrics()["process_resident_memory_bytes"]
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(one, range(50, 200)))
        assert len(ok) == 200 and all(ok), ok.count(False)
        end = time.time() + 30
        m = s.metrics()
        while m["minnow_slots_busy"] != 0 and time.time() < end:
            time.sleep(0.1)
            m = s.metrics()
        assert m["minnow_slots_busy"] == 0
        assert m["minnow_slots_free"] == 4
        assert m["minnow_queue_depth"] == 0
        assert m["minnow_requests_cancelled_total"] >= 8
        rss_after = m["process_resident_memory_bytes"]
        report(f"[server faults] 8 disconnects + 200 requests: RSS {rss_before / 2**20:.1f} -> "
               f"{rss_after / 2**20:.1f} MiB, slots free {m['minnow_slots_free']:.0f}/4")
        assert rss_after < rss_before * 1.10 + 16 * 2**20, (rss_before, rss_after)
