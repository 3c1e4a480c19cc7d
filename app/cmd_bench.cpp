// minnow bench -m MODEL [-p 512] [-n 128] [-r 5] [-t T] [-o md|json] [--device D] [-d DEPTH]:
// llama-bench's tests. ppN: one forward pass over an N-token prompt; tgN: N single-token decode steps.
// -d fills DEPTH tokens of context first (not timed). Token ids are random. Each test runs once to warm
// up, then -r timed repetitions; t/s is reported as mean and standard deviation over the repetitions.
// Generation tests also report the weight bytes read per second and their share of the machine's read
// bandwidth, which is measured once per run (a streaming read with the same thread count).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "app/commands.h"
#include "app/common_model_flags.h"
#include "backend/backend.h"
#include "common/args.h"
#include "common/error.h"
#include "common/membw.h"
#include "common/thread_pool.h"
#include "gguf/gguf_file.h"
#include "model/model.h"
#include "quant/simd/simd_level.h"

namespace minnow {
namespace {

std::vector<int> parse_int_list(const std::string& flag, const std::string& s) {
  std::vector<int> v;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    const int64_t x = parse_int(flag, s.substr(start, comma - start));
    if (x < 0 || x > (1 << 20)) throw Error(flag + " value " + std::to_string(x) + " is out of range");
    v.push_back(static_cast<int>(x));
    start = comma + 1;
  }
  return v;
}

size_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return static_cast<size_t>(std::strtoull(line.c_str() + 6, nullptr, 10)) * 1024;
  return 0;
}

std::string ftype_name(int64_t ft) {
  switch (ft) {
    case 0: return "all F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K - Medium";
    case 11: return "Q3_K - Small";
    case 12: return "Q3_K - Medium";
    case 13: return "Q3_K - Large";
    case 14: return "Q4_K - Small";
    case 15: return "Q4_K - Medium";
    case 16: return "Q5_K - Small";
    case 17: return "Q5_K - Medium";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "ftype " + std::to_string(ft);
  }
}

std::string params_label(double n) {
  char buf[32];
  if (n >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.1fB", n / 1e9);
  } else {
    std::snprintf(buf, sizeof buf, "%.0fM", n / 1e6);
  }
  return buf;
}

struct TestResult {
  std::string name;  // pp512, tg128, "tg128 @ d2048"
  int n_prompt = 0, n_gen = 0, n_depth = 0;
  std::vector<double> ts;  // tokens/s per repetition
  double avg = 0, stddev = 0;
};

void stats(TestResult& r) {
  double s = 0;
  for (double v : r.ts) s += v;
  r.avg = r.ts.empty() ? 0 : s / static_cast<double>(r.ts.size());
  double q = 0;
  for (double v : r.ts) q += (v - r.avg) * (v - r.avg);
  r.stddev = r.ts.size() > 1 ? std::sqrt(q / static_cast<double>(r.ts.size() - 1)) : 0;
}

class Runner {
 public:
  Runner(Backend& be, int64_t n_vocab, uint32_t seed) : be_(be), n_vocab_(n_vocab), rng_(seed) {}

  int32_t random_token() { return static_cast<int32_t>(rng_() % static_cast<uint64_t>(n_vocab_)); }

  // Fills positions [0, depth) of slot 0 in chunks (untimed).
  void fill(int depth) {
    be_.seq_clear(0);
    for (int p = 0; p < depth;) {
      const int n = std::min(512, depth - p);
      Batch b;
      for (int i = 0; i < n; ++i) b.add(random_token(), p + i, 0, i == n - 1);
      logits_.clear();
      be_.forward(b, logits_);
      p += n;
    }
  }
  // One prompt batch of n tokens after `depth` positions; returns seconds.
  double prompt(int depth, int n) {
    fill(depth);
    Batch b;
    for (int i = 0; i < n; ++i) b.add(random_token(), depth + i, 0, i == n - 1);
    logits_.clear();
    const double t0 = now_ms();
    be_.forward(b, logits_);
    return (now_ms() - t0) / 1e3;
  }
  // n single-token steps after `depth` positions; returns seconds.
  double generate(int depth, int n) {
    fill(depth);
    int32_t tok = random_token();
    const double t0 = now_ms();
    for (int i = 0; i < n; ++i) {
      Batch b;
      b.add(tok, depth + i, 0, true);
      logits_.clear();
      be_.forward(b, logits_);
      tok = random_token();
    }
    return (now_ms() - t0) / 1e3;
  }

 private:
  Backend& be_;
  int64_t n_vocab_;
  std::mt19937_64 rng_;
  std::vector<float> logits_;
};

int cmd_bench(int argc, char** argv) {
  ModelFlags mf;
  std::string p_list = "512", n_list = "128", d_list = "0", out = "md";
  int reps = 5;
  ArgParser args("bench");
  mf.add_to(args, false);
  args.add_string({"-p", "--n-prompt"}, &p_list, "prompt lengths to test, comma-separated (default 512; 0: none)");
  args.add_string({"-n", "--n-gen"}, &n_list, "generation lengths to test, comma-separated (default 128; 0: none)");
  args.add_string({"-d", "--n-depth"}, &d_list, "context depths filled before each test (default 0)");
  args.add_int({"-r", "--repetitions"}, &reps, "timed repetitions per test (default 5)");
  args.add_string({"-o", "--output"}, &out, "md or json (default md)");
  if (!args.parse(argc, argv, 1)) return 0;
  if (mf.model.empty()) throw Error("no model given (use -m FILE)");
  if (reps < 1 || reps > 1000) throw Error("-r must be between 1 and 1000");
  if (out != "md" && out != "json") throw Error("-o must be md or json");
  if (mf.threads < 0) throw Error("-t must be >= 0");
  const auto ps = parse_int_list("-p", p_list), ns = parse_int_list("-n", n_list), ds = parse_int_list("-d", d_list);

  int max_tokens = 1;
  for (int d : ds)
    for (int x : ps) max_tokens = std::max(max_tokens, d + x);
  for (int d : ds)
    for (int x : ns) max_tokens = std::max(max_tokens, d + x);

  const int n_threads = mf.threads > 0 ? mf.threads : std::max(1u, std::thread::hardware_concurrency());
  double membw = 0;
  {
    ThreadPool pool(n_threads);
    membw = measure_read_bandwidth(pool);
  }
  {
    // The bandwidth buffer is freed; reset the peak-RSS mark so "peak" covers the model run only.
    std::ofstream clear("/proc/self/clear_refs");
    if (clear) clear << "5";
  }

  LoadedModel lm = load_model_and_tokenizer(mf);
  mf.ctx = max_tokens;
  mf.threads = n_threads;
  build_backend(lm, mf, max_tokens);
  Backend& be = *lm.backend;
  const Model& model = *lm.model;

  size_t model_size = 0;
  double n_params = 0;
  for (const auto& t : model.gguf().tensors()) {
    model_size += t.nbytes;
    n_params += static_cast<double>(t.n_elements());
  }
  const std::string model_type = model.params().arch + " " + params_label(n_params) + " " +
                                 ftype_name(model.gguf().get_int("general.file_type").value_or(-1));
  const std::string backend_name = be.name() == "cpu" ? "CPU" : be.name() == "cuda" ? "CUDA" : be.name();
  const double weight_bytes = static_cast<double>(be.weight_bytes());

  Runner runner(be, model.params().n_vocab, 12345);
  std::vector<TestResult> results;
  auto run_test = [&](int n_prompt, int n_gen, int depth) {
    TestResult r;
    r.n_prompt = n_prompt;
    r.n_gen = n_gen;
    r.n_depth = depth;
    r.name = n_prompt > 0 ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen);
    if (depth > 0) r.name += " @ d" + std::to_string(depth);
    for (int i = 0; i <= reps; ++i) {  // the first run warms up
      const double s = n_prompt > 0 ? runner.prompt(depth, n_prompt) : runner.generate(depth, n_gen);
      if (i > 0) r.ts.push_back((n_prompt > 0 ? n_prompt : n_gen) / s);
    }
    stats(r);
    results.push_back(r);
  };
  for (int d : ds) {
    for (int p : ps)
      if (p > 0) run_test(p, 0, d);
    for (int n : ns)
      if (n > 0) run_test(0, n, d);
  }
  const size_t rss = rss_bytes(), peak = peak_rss_bytes();

  if (out == "json") {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& r : results) {
      nlohmann::json j;
      j["model_filename"] = mf.model;
      j["model_type"] = model_type;
      j["model_size"] = model_size;
      j["model_n_params"] = static_cast<int64_t>(n_params);
      j["backend"] = backend_name;
      j["simd"] = simd_level_name(simd_level());
      j["n_threads"] = n_threads;
      j["n_prompt"] = r.n_prompt;
      j["n_gen"] = r.n_gen;
      j["n_depth"] = r.n_depth;
      j["avg_ts"] = r.avg;
      j["stddev_ts"] = r.stddev;
      j["samples_ts"] = r.ts;
      j["kv_cache_bytes"] = be.kv_cache_bytes();
      j["rss_bytes"] = rss;
      j["peak_rss_bytes"] = peak;
      j["membw_gbps"] = membw / 1e9;
      if (r.n_gen > 0) {
        j["weight_bytes_per_token"] = weight_bytes;
        j["weight_gbps"] = weight_bytes * r.avg / 1e9;
        j["membw_pct"] = membw > 0 ? 100.0 * weight_bytes * r.avg / membw : 0.0;
      }
      arr.push_back(j);
    }
    std::printf("%s\n", arr.dump(2).c_str());
    return 0;
  }

  std::printf("| model | size | params | backend | threads | test | t/s | weights GB/s | %% of read bw |\n");
  std::printf("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n");
  for (const auto& r : results) {
    std::string gbs, pct;
    if (r.n_gen > 0) {
      char b1[32], b2[32];
      std::snprintf(b1, sizeof b1, "%.2f", weight_bytes * r.avg / 1e9);
      std::snprintf(b2, sizeof b2, "%.1f%%", membw > 0 ? 100.0 * weight_bytes * r.avg / membw : 0.0);
      gbs = b1;
      pct = b2;
    }
    std::printf("| %s | %.2f MiB | %.2f B | %s | %d | %s | %.2f ± %.2f | %s | %s |\n", model_type.c_str(),
                static_cast<double>(model_size) / (1024.0 * 1024.0), n_params / 1e9, backend_name.c_str(),
                n_threads, r.name.c_str(), r.avg, r.stddev, gbs.c_str(), pct.c_str());
  }
  std::printf("\nread bandwidth (measured, %d threads): %.2f GB/s; weights read per token: %.2f MiB; SIMD: %s\n",
              n_threads, membw / 1e9, weight_bytes / (1024.0 * 1024.0), simd_level_name(simd_level()));
  std::printf("resident memory: VmRSS %.1f MiB, peak %.1f MiB (model file %.1f MiB, KV cache %.1f MiB)\n",
              static_cast<double>(rss) / (1024.0 * 1024.0), static_cast<double>(peak) / (1024.0 * 1024.0),
              static_cast<double>(model.gguf().file_size()) / (1024.0 * 1024.0),
              static_cast<double>(be.kv_cache_bytes()) / (1024.0 * 1024.0));
  return 0;
}

}  // namespace

MINNOW_COMMAND("bench", "measure prompt and generation speed (llama-bench's tests)", cmd_bench);

}  // namespace minnow
