#pragma once
// Flags and loading shared by the model-running subcommands (run, score, perplexity, ...):
// -m/--model, -t/--threads, -c/--ctx-size, --device, and a loader that times the load.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "common/args.h"
#include "sample/sampler.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace minnow {

class ArgParser;

// The sampler flags shared by run and chat (--temp, --top-k, --top-p, --min-p, --repeat-penalty,
// --repeat-last-n, -s/--seed), bound to sp and seed.
void add_sampler_flags(ArgParser& args, SamplerParams& sp, int64_t& seed);

struct ModelFlags {
  std::string model;            // -m
  int threads = 0;              // -t (0: all cores)
  int ctx = -1;                 // -c (-1: the command's default, 0: the model's training context)
  std::string device = "auto";  // --device auto|cpu|cuda
  void add_to(ArgParser& args, bool with_ctx = true);
};

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<Backend> backend;
  int n_ctx = 0;
  double load_ms = 0;  // open + map + checks + backend construction
};

// Opens the model and tokenizer only (no backend).
LoadedModel load_model_and_tokenizer(const ModelFlags& f);
// Resolves the context size (-1 -> min(default_ctx, trained), 0 -> trained) and builds the backend.
void build_backend(LoadedModel& lm, const ModelFlags& f, int default_ctx, int n_seq_max = 1,
                   const std::string& dump_dir = "");

// Resident set size of this process in bytes (VmRSS), 0 if unavailable.
size_t rss_bytes();
// Milliseconds on a monotonic clock.
double now_ms();
// "1,2,3" -> ids; throws Error on anything that is not a comma-separated list of integers.
std::vector<int32_t> parse_token_list(const std::string& s);

// Hook for `minnow run --chat`: turns the user's text into prompt tokens through the model's chat template.
// Installed by the chat module (a static registrar in its app file); empty when chat support is absent.
using ChatPromptFn = std::function<std::vector<int32_t>(const Model&, const Tokenizer&, const std::string& user)>;
ChatPromptFn& run_chat_prompt_hook();

}  // namespace minnow
