// minnow run -m MODEL -p PROMPT [-n N] [sampling flags] [-t T] [-c CTX] [--json] [--device D]:
// streams the continuation to stdout as it is generated; one timing summary line on stderr.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/common_model_flags.h"
#include "backend/cpu/debug_break.h"
#include "common/args.h"
#include "common/error.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace minnow {
namespace {

int cmd_run(int argc, char** argv) {
  // Resident memory before anything is loaded (the program and its shared libraries, e.g. CUDA's).
  const double rss_start_mib = static_cast<double>(rss_bytes()) / (1024.0 * 1024.0);
  ModelFlags mf;
  std::string prompt;
  int n_predict = -1, n_batch = 2048;
  int64_t seed = -1;
  bool json = false, special = false, chat = false;
  SamplerParams sp;
  ArgParser args("run");
  mf.add_to(args);
  args.add_string({"-p", "--prompt"}, &prompt, "prompt text");
  args.add_int({"-n", "--n-predict"}, &n_predict, "tokens to generate (-1: until end of generation or context full)");
  add_sampler_flags(args, sp, seed);
  args.add_int({"-b", "--batch-size"}, &n_batch, "prompt tokens per forward pass (default 2048)");
  args.add_flag({"--json"}, &json, "end stdout with a JSON object: prompt_tokens, tokens, text, timings");
  args.add_flag({"--special"}, &special, "parse special-token texts in the prompt");
  args.add_flag({"--chat"}, &chat, "lay the prompt out as one user turn of the model's chat template");
  if (!args.parse(argc, argv, 1)) return 0;
  if (!args.was_set("-p")) throw Error("no prompt given (use -p TEXT)");
  if (n_predict < -1) throw Error("-n must be >= -1");
  if (n_batch <= 0) throw Error("-b must be positive");
  sp.seed = seed;

  LoadedModel lm = load_model_and_tokenizer(mf);
  build_backend(lm, mf, 4096);
  const Tokenizer& tok = *lm.tok;
  const int64_t nv = lm.model->params().n_vocab;
  Sampler sampler(sp, nv);

  std::vector<int32_t> ptoks;
  if (chat) {
    ChatPromptFn& hook = run_chat_prompt_hook();
    if (!hook) throw Error("--chat is not available in this build");
    ptoks = hook(*lm.model, tok, prompt);
  } else {
    ptoks = tok.encode(prompt, true, special);
  }
  if (ptoks.empty()) throw Error("the prompt is empty (and the model adds no BOS)");
  if (static_cast<int64_t>(ptoks.size()) >= lm.n_ctx)
    throw Error("the prompt (" + std::to_string(ptoks.size()) + " tokens) does not fit the context size " +
                std::to_string(lm.n_ctx) + " (use -c)");

  // Prompt: batched forward passes; logits for the last token only.
  std::vector<float> logits;
  const double t_prompt = now_ms();
  for (size_t start = 0; start < ptoks.size(); start += static_cast<size_t>(n_batch)) {
    const size_t end = std::min(ptoks.size(), start + static_cast<size_t>(n_batch));
    Batch b;
    for (size_t i = start; i < end; ++i) b.add(ptoks[i], static_cast<int32_t>(i), 0, i + 1 == ptoks.size());
    lm.backend->forward(b, logits);
  }
  const double prompt_ms = now_ms() - t_prompt;
  for (int32_t t : ptoks) sampler.accept(t);

  std::vector<int32_t> out;
  std::string text;
  StreamDecoder dec(tok);
  std::string stop = "length";
  int32_t pos = static_cast<int32_t>(ptoks.size());
  // 1; 0 under MINNOW_DEBUG_BREAK=decode_stuck_pos, the negative control for the decode-loop tests.
  const int32_t pos_step = (debug_break_from_env() & kBreakDecodeStuckPos) ? 0 : 1;
  size_t n_decode = 0;
  const double t_gen = now_ms();
  for (;;) {
    if (n_predict >= 0 && static_cast<int>(out.size()) >= n_predict) break;
    const int32_t id = sampler.sample(logits.data());
    sampler.accept(id);
    if (tok.is_eog(id)) {
      stop = "eog";
      break;
    }
    out.push_back(id);
    const std::string piece = dec.push(id);
    if (!piece.empty()) {
      text += piece;
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    if (n_predict >= 0 && static_cast<int>(out.size()) >= n_predict) break;
    if (pos >= lm.n_ctx) {
      stop = "context";
      break;
    }
    Batch b;
    b.add(id, pos, 0, true);
    pos += pos_step;
    logits.clear();
    lm.backend->forward(b, logits);
    ++n_decode;
  }
  const double gen_ms = now_ms() - t_gen;
  const std::string tail = dec.flush();
  text += tail;
  std::fwrite(tail.data(), 1, tail.size(), stdout);

  const double pp_tps = prompt_ms > 0 ? 1000.0 * static_cast<double>(ptoks.size()) / prompt_ms : 0;
  // Generation rate: single-token forward passes per second of the decode loop.
  const double tg_tps = n_decode > 0 && gen_ms > 0 ? 1000.0 * static_cast<double>(n_decode) / gen_ms : 0;
  const double rss_mib = static_cast<double>(rss_bytes()) / (1024.0 * 1024.0);
  std::fprintf(stderr,
               "\nload %.1f ms | prompt %zu tokens, %.2f tokens/s | generation %zu tokens, %.2f tokens/s | %s | RSS %.1f MiB\n",
               lm.load_ms, ptoks.size(), pp_tps, out.size(), tg_tps, lm.backend->name().c_str(), rss_mib);
  if (json) {
    nlohmann::json j;
    j["prompt_tokens"] = ptoks;
    j["tokens"] = out;
    j["text"] = text;
    j["stop"] = stop;
    j["seed"] = sampler.seed();
    j["timings"] = {{"load_ms", lm.load_ms},
                    {"prompt_n", ptoks.size()},
                    {"prompt_ms", prompt_ms},
                    {"prompt_per_second", pp_tps},
                    {"predicted_n", out.size()},
                    {"predicted_ms", gen_ms},
                    {"predicted_per_second", tg_tps},
                    {"rss_mib", rss_mib},
                    {"rss_start_mib", rss_start_mib},
                    {"kv_cache_mib", static_cast<double>(lm.backend->kv_cache_bytes()) / (1024.0 * 1024.0)},
                    {"device", lm.backend->name()}};
    const std::string s = "\n" + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(s.data(), 1, s.size(), stdout);
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

MINNOW_COMMAND("run", "generate a continuation of a prompt", cmd_run);

}  // namespace minnow
