#pragma once
// llama.cpp's default sampler chain: repetition penalty over the last-n window, top-k, top-p, min-p,
// temperature, then a seeded random draw. temp <= 0 is greedy (argmax after penalties, lowest id on ties).
#include <cstdint>
#include <deque>
#include <random>
#include <utility>
#include <vector>

namespace minnow {

struct SamplerParams {
  double temp = 0.8;
  int top_k = 40;              // <= 0: disabled
  double top_p = 0.95;         // >= 1: disabled
  double min_p = 0.05;         // <= 0: disabled
  double repeat_penalty = 1.0; // 1: disabled
  int repeat_last_n = 64;      // 0: disabled, -1: the whole history
  int64_t seed = -1;           // -1: a random seed
};

class Sampler {
 public:
  Sampler(const SamplerParams& p, int64_t n_vocab);
  // Picks a token from logits[n_vocab]; does not record it (call accept()).
  int32_t sample(const float* logits);
  // Records a token (prompt or generated) in the repetition-penalty window.
  void accept(int32_t token);
  void reset();  // clears the history (the RNG keeps its state)
  uint64_t seed() const { return seed_; }
  const SamplerParams& params() const { return p_; }

 private:
  SamplerParams p_;
  int64_t n_vocab_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::deque<int32_t> history_;                     // [<= repeat_last_n] most recent last
  std::vector<std::pair<float, int32_t>> cand_;     // [n_vocab] scratch (logit, id)
};

// Applies llama.cpp's repetition penalty in place to logits[n_vocab] for each distinct id in `recent`.
void apply_repeat_penalty(float* logits, int64_t n_vocab, const std::vector<int32_t>& recent, double penalty);
// argmax, lowest id on ties
int32_t argmax(const float* logits, int64_t n);

// log(sum(exp(logits))) computed stably in double
double logsumexp(const float* logits, int64_t n);
// out[n] = log-softmax(logits)
void log_softmax(const float* logits, int64_t n, std::vector<float>& out);
// The k largest (id, logit) pairs, largest first, lower id first on ties.
std::vector<std::pair<int32_t, float>> top_k_logits(const float* logits, int64_t n, int64_t k);

}  // namespace minnow
