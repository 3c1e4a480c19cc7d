#include "app/common_model_flags.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "backend/backend_factory.h"
#include "backend/kv_reuse_check.h"
#include "common/args.h"
#include "common/error.h"
#include "gguf/gguf_file.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace minnow {

void ModelFlags::add_to(ArgParser& args, bool with_ctx) {
  args.add_string({"-m", "--model"}, &model, "GGUF model file (required)");
  args.add_int({"-t", "--threads"}, &threads, "CPU threads (default: all cores)");
  if (with_ctx) args.add_int({"-c", "--ctx-size"}, &ctx, "context size in tokens (0: the model's)");
  args.add_string({"--device"}, &device, "auto, cpu or cuda (default: auto)");
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

LoadedModel load_model_and_tokenizer(const ModelFlags& f) {
  if (f.model.empty()) throw Error("no model given (use -m FILE)");
  if (f.threads < 0) throw Error("-t must be >= 0");
  LoadedModel lm;
  const double t0 = now_ms();
  lm.model = Model::load(f.model);
  lm.tok = Tokenizer::from_gguf(lm.model->gguf());
  if (lm.tok->n_vocab() != lm.model->params().n_vocab)
    throw Error("tokenizer and model disagree on the vocabulary size");
  lm.load_ms = now_ms() - t0;
  return lm;
}

void build_backend(LoadedModel& lm, const ModelFlags& f, int default_ctx, int n_seq_max, const std::string& dump_dir) {
  const int64_t trained = lm.model->params().n_ctx_train;
  int64_t ctx = f.ctx;
  if (ctx < -1) throw Error("-c must be >= 0");
  if (ctx == -1) ctx = std::min<int64_t>(default_ctx, trained);
  if (ctx == 0) ctx = trained;
  if (ctx > (1 << 24)) throw Error("-c " + std::to_string(ctx) + " is too large");
  lm.n_ctx = static_cast<int>(ctx);
  BackendOptions o;
  o.n_ctx = lm.n_ctx;
  o.n_seq_max = n_seq_max;
  o.n_threads = f.threads;
  o.dump_dir = dump_dir;
  const double t0 = now_ms();
  lm.backend = maybe_wrap_kv_reuse_check(make_backend(*lm.model, o, f.device), n_seq_max);
  lm.load_ms += now_ms() - t0;
}

size_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return static_cast<size_t>(std::strtoull(line.c_str() + 6, nullptr, 10)) * 1024;
  return 0;
}

std::vector<int32_t> parse_token_list(const std::string& s) {
  std::vector<int32_t> ids;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    std::string item = s.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(0, 1);
    while (!item.empty() && item.back() == ' ') item.pop_back();
    const int64_t v = parse_int("--tokens", item);
    if (v < INT32_MIN || v > INT32_MAX) throw Error("--tokens: id " + item + " out of range");
    ids.push_back(static_cast<int32_t>(v));
    start = comma + 1;
  }
  return ids;
}

ChatPromptFn& run_chat_prompt_hook() {
  static ChatPromptFn fn;
  return fn;
}

void add_sampler_flags(ArgParser& args, SamplerParams& sp, int64_t& seed) {
  args.add_float({"--temp"}, &sp.temp, "temperature (default 0.8; <= 0: greedy)");
  args.add_int({"--top-k"}, &sp.top_k, "top-k (default 40; <= 0: off)");
  args.add_float({"--top-p"}, &sp.top_p, "top-p in [0, 1] (default 0.95; 1: off)", 0.0, 1.0);
  args.add_float({"--min-p"}, &sp.min_p, "min-p in [0, 1] (default 0.05; 0: off)", 0.0, 1.0);
  args.add_float({"--repeat-penalty"}, &sp.repeat_penalty, "repetition penalty (default 1.0: off)");
  args.add_int({"--repeat-last-n"}, &sp.repeat_last_n, "tokens the penalty looks back on (default 64; -1: all)");
  args.add_int({"-s", "--seed"}, &seed, "random seed (default -1: random)");
}

}  // namespace minnow
