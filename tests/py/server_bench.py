"""Server throughput bench (not a test): one client alone, then N concurrent clients, each sending a prompt of
P random token ids and generating G tokens (temperature 0, ignore_eos), through /v1/completions. Prints
aggregate tokens/s, latency percentiles, and checks that K of the concurrent outputs equal the same requests
run alone (batch invariance).

  MINNOW_BIN=build/bin/minnow python3 tests/py/server_bench.py --model M.gguf --device cuda \
      --parallel 128 --ctx 512 --clients 128 --prompt-tokens 128 --gen-tokens 128 --alone 16
"""
import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from server_util import Server, percentile  # noqa: E402


def run(srv, prompt, gen):
    t0 = time.perf_counter()
    st, body = srv.post("/v1/completions", {"prompt": prompt, "max_tokens": gen, "temperature": 0,
                                            "ignore_eos": True}, timeout=900)
    t1 = time.perf_counter()
    if st != 200:
        return None, t1 - t0, body
    j = json.loads(body)
    return j, t1 - t0, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--parallel", type=int, default=128)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--clients", type=int, default=128)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--alone", type=int, default=8)
    ap.add_argument("--vocab-lo", type=int, default=300)
    ap.add_argument("--vocab-hi", type=int, default=30000)
    ap.add_argument("--server-args", default="", help="extra `minnow serve` flags, e.g. --split-passes")
    a = ap.parse_args()
    rng = random.Random(1)
    prompts = [[rng.randrange(a.vocab_lo, a.vocab_hi) for _ in range(a.prompt_tokens)] for _ in range(a.clients)]
    args = ["--device", a.device, "--parallel", str(a.parallel), "-c", str(a.ctx), "--queue", str(a.clients)] + a.server_args.split()
    with Server(a.model, args, timeout=600) as srv:
        print("".join(srv.log).strip())
        run(srv, prompts[0], 8)  # warm-up (graphs, allocations)
        j, wall1, err = run(srv, prompts[0], a.gen_tokens)
        assert j, err
        single = a.gen_tokens / wall1
        print(f"single client: {a.gen_tokens} tokens in {wall1:.3f} s = {single:.1f} tok/s generated")
        results = [None] * a.clients
        barrier = threading.Barrier(a.clients + 1)

        def worker(i):
            barrier.wait()
            results[i] = run(srv, prompts[i], a.gen_tokens)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.clients)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        errors = [r[2] for r in results if r[0] is None]
        gen = sum(r[0]["usage"]["completion_tokens"] for r in results if r[0])
        prm = sum(r[0]["usage"]["prompt_tokens"] for r in results if r[0])
        lat = [r[1] for r in results]
        m = srv.metrics()
        print(f"{a.clients} clients x ({a.prompt_tokens} prompt + {a.gen_tokens} generated): {len(errors)} errors; "
              f"{gen} generated in {wall:.3f} s = {gen / wall:.1f} tok/s generated, "
              f"{(gen + prm) / wall:.1f} tok/s prompt+generated; {gen / wall / single:.1f}x single")
        print(f"request latency p50 {percentile(lat, 50):.2f} s p99 {percentile(lat, 99):.2f} s; "
              f"server TTFT mean {m['minnow_time_to_first_token_seconds_sum'] / max(1, m['minnow_time_to_first_token_seconds_count']) * 1000:.0f} ms; "
              f"forward passes {m['minnow_forward_passes_total']:.0f}, mean batch "
              f"{m['minnow_batch_tokens_total'] / max(1, m['minnow_forward_passes_total']):.1f} tokens")
        if "minnow_forward_seconds_total" in m:
            print(f"scheduler: {m['minnow_step_seconds_total']:.2f} s in steps, of which "
                  f"{m['minnow_forward_seconds_total']:.2f} s in Backend::forward "
                  f"({m['minnow_forward_seconds_total'] / max(1e-9, m['minnow_step_seconds_total']) * 100:.0f}%)")
        if errors:
            print("first error:", errors[0][:300])
        mism = 0
        for i in range(min(a.alone, a.clients)):
            j, _, _ = run(srv, prompts[i], a.gen_tokens)
            if not j or not results[i][0] or j["choices"][0]["text"] != results[i][0]["choices"][0]["text"]:
                mism += 1
        print(f"batch invariance: {min(a.alone, a.clients) - mism}/{min(a.alone, a.clients)} concurrent outputs "
              f"equal the same request alone")
        print(f"slots busy after: {srv.metrics()['minnow_slots_busy']:.0f}")


if __name__ == "__main__":
    main()
