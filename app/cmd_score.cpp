// minnow score -m MODEL (--tokens ID,ID,... | -p TEXT) [--top K] [--dump DIR]: teacher-forced logits.
// One JSON line per input position i (the logits after consuming token i, predicting token i+1):
// {"pos": i, "token": id, "logsumexp": x, "top": [[id, logit], ...]} largest first.
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/common_model_flags.h"
#include "common/args.h"
#include "common/error.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace minnow {
namespace {

int cmd_score(int argc, char** argv) {
  ModelFlags mf;
  std::string tokens_str, prompt, dump_dir;
  int top = 40, n_batch = 512;
  bool special = false;
  ArgParser args("score");
  mf.add_to(args);
  args.add_string({"--tokens"}, &tokens_str, "comma-separated token ids, fed as is");
  args.add_string({"-p", "--prompt"}, &prompt, "text to tokenize (BOS per model metadata)");
  args.add_flag({"--special"}, &special, "parse special-token texts in -p");
  args.add_int({"--top"}, &top, "logits per position to print (default 40)");
  args.add_int({"-b", "--batch-size"}, &n_batch, "tokens per forward pass (default 512)");
  args.add_string({"--dump"}, &dump_dir, "write every named intermediate as .npy into DIR");
  if (!args.parse(argc, argv, 1)) return 0;
  const bool has_tokens = args.was_set("--tokens"), has_prompt = args.was_set("-p");
  if (has_tokens == has_prompt) throw Error("give exactly one of --tokens or -p");
  if (top < 0) throw Error("--top must be >= 0");
  if (n_batch <= 0) throw Error("-b must be positive");

  LoadedModel lm = load_model_and_tokenizer(mf);
  const int64_t nv = lm.model->params().n_vocab;
  std::vector<int32_t> ids = has_tokens ? parse_token_list(tokens_str) : lm.tok->encode(prompt, true, special);
  if (ids.empty()) throw Error("nothing to score (no tokens)");
  for (int32_t id : ids)
    if (id < 0 || id >= nv) throw Error("token id " + std::to_string(id) + " out of range [0, " + std::to_string(nv) + ")");
  if (!dump_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dump_dir, ec);
    if (ec) throw Error("cannot create --dump directory " + dump_dir);
  }
  ModelFlags bf = mf;
  if (bf.ctx == -1) bf.ctx = static_cast<int>(ids.size());
  if (bf.ctx != 0 && static_cast<size_t>(bf.ctx) < ids.size())
    throw Error(std::to_string(ids.size()) + " tokens do not fit the context size " + std::to_string(bf.ctx));
  build_backend(lm, bf, static_cast<int>(ids.size()), 1, dump_dir);
  if (static_cast<size_t>(lm.n_ctx) < ids.size())
    throw Error(std::to_string(ids.size()) + " tokens do not fit the context size " + std::to_string(lm.n_ctx));

  std::vector<float> logits;
  std::string line;
  for (size_t start = 0; start < ids.size(); start += static_cast<size_t>(n_batch)) {
    const size_t end = std::min(ids.size(), start + static_cast<size_t>(n_batch));
    Batch b;
    for (size_t i = start; i < end; ++i) b.add(ids[i], static_cast<int32_t>(i), 0, true);
    logits.clear();
    lm.backend->forward(b, logits);
    for (size_t i = start; i < end; ++i) {
      const float* row = logits.data() + (i - start) * static_cast<size_t>(nv);
      line = fmt::format("{{\"pos\": {}, \"token\": {}, \"logsumexp\": {}, \"top\": [", i, ids[i], logsumexp(row, nv));
      const auto tk = top_k_logits(row, nv, top);
      for (size_t k = 0; k < tk.size(); ++k) line += fmt::format("{}[{}, {}]", k ? ", " : "", tk[k].first, tk[k].second);
      line += "]}\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
    }
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

MINNOW_COMMAND("score", "teacher-forced logits per position as JSON lines", cmd_score);

}  // namespace minnow
