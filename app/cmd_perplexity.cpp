// minnow perplexity -m MODEL -f TEXT [-c CTX=512] [-b BATCH] [--chunks N]: llama-perplexity's method.
// The whole file is tokenized (BOS per metadata) and cut into chunks of CTX tokens; each chunk is evaluated
// from an empty cache with its first token replaced by BOS (when the model adds BOS), and only the second
// half of each chunk is scored. Prints the running PPL per chunk and "Final estimate: PPL = x +/- y".
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "app/commands.h"
#include "app/common_model_flags.h"
#include "common/args.h"
#include "common/error.h"
#include "common/input_file.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"

namespace minnow {
namespace {

int cmd_perplexity(int argc, char** argv) {
  ModelFlags mf;
  mf.ctx = 512;
  std::string file;
  int n_batch = 2048, n_chunks = -1;
  ArgParser args("perplexity");
  mf.add_to(args);
  args.add_string({"-f", "--file"}, &file, "text file to evaluate (required; a regular file of at most 256 MiB)");
  args.add_int({"-b", "--batch-size"}, &n_batch, "tokens per forward pass (default 2048, at most CTX)");
  args.add_int({"--chunks"}, &n_chunks, "evaluate at most N chunks (default -1: all)");
  if (!args.parse(argc, argv, 1)) return 0;
  if (file.empty()) throw Error("no text file given (use -f FILE)");
  if (mf.ctx < 3) throw Error("-c must be at least 3 for perplexity");
  if (n_batch <= 0) throw Error("-b must be positive");
  const std::string text = read_input_file(file);

  LoadedModel lm = load_model_and_tokenizer(mf);
  build_backend(lm, mf, mf.ctx);
  const int n_ctx = lm.n_ctx;
  n_batch = std::min(n_batch, n_ctx);
  const Tokenizer& tok = *lm.tok;
  const int64_t nv = lm.model->params().n_vocab;
  const bool add_bos = tok.add_bos();

  const double t_tok = now_ms();
  std::vector<int32_t> tokens = tok.encode(text, true, false);
  std::fprintf(stderr, "perplexity: tokenizing the input took %.0f ms, %zu tokens\n", now_ms() - t_tok, tokens.size());
  if (tokens.size() < 2 * static_cast<size_t>(n_ctx))
    throw Error("you need at least " + std::to_string(2 * n_ctx) + " tokens to evaluate perplexity with a context of " +
                std::to_string(n_ctx) + " (the text has " + std::to_string(tokens.size()) + ")");
  int n_chunk = static_cast<int>(tokens.size() / static_cast<size_t>(n_ctx));
  if (n_chunks >= 0) n_chunk = std::min(n_chunk, n_chunks);
  const int first = n_ctx / 2;
  std::fprintf(stderr, "perplexity: calculating perplexity over %d chunks, n_ctx=%d, batch_size=%d\n", n_chunk, n_ctx, n_batch);

  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<float> logits, logp;
  const double t0 = now_ms();
  for (int c = 0; c < n_chunk; ++c) {
    const size_t start = static_cast<size_t>(c) * static_cast<size_t>(n_ctx);
    lm.backend->seq_clear(0);
    logits.clear();
    for (int j = 0; j < n_ctx; j += n_batch) {
      Batch b;
      for (int k = j; k < std::min(n_ctx, j + n_batch); ++k) {
        int32_t id = tokens[start + static_cast<size_t>(k)];
        if (k == 0 && add_bos) id = tok.bos();
        b.add(id, k, 0, k >= first);
      }
      lm.backend->forward(b, logits);
    }
    // logits rows: positions first .. n_ctx-1; row r predicts token start + first + r + 1.
    for (int r = 0; r < n_ctx - 1 - first; ++r) {
      log_softmax(logits.data() + static_cast<size_t>(r) * static_cast<size_t>(nv), nv, logp);
      const double v = -static_cast<double>(logp[static_cast<size_t>(tokens[start + static_cast<size_t>(first + r + 1)])]);
      nll += v;
      nll2 += v * v;
      ++count;
    }
    if (c == 0)
      std::fprintf(stderr, "perplexity: %.2f seconds per pass - ETA %.1f minutes\n", (now_ms() - t0) / 1000.0,
                   (now_ms() - t0) * n_chunk / 60000.0);
    std::printf("[%d]%.4f,", c + 1, std::exp(nll / static_cast<double>(count)));
    std::fflush(stdout);
  }
  std::printf("\n");
  const double mean = nll / static_cast<double>(count);
  const double ppl = std::exp(mean);
  double var = nll2 / static_cast<double>(count) - mean * mean;
  if (var > 0 && count > 1) {
    const double sd = std::sqrt(var * static_cast<double>(count) / static_cast<double>(count - 1) / static_cast<double>(count));
    std::printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, sd * ppl);
  } else {
    std::printf("Final estimate: PPL = %.4f\n", ppl);
  }
  std::fflush(stdout);
  std::fprintf(stderr, "perplexity: %d chunks, %lld scored tokens, %.1f s, RSS %.1f MiB\n", n_chunk,
               static_cast<long long>(count), (now_ms() - t0) / 1000.0,
               static_cast<double>(rss_bytes()) / (1024.0 * 1024.0));
  return 0;
}

}  // namespace

MINNOW_COMMAND("perplexity", "perplexity of a text file (llama-perplexity's method)", cmd_perplexity);

}  // namespace minnow
