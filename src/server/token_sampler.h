#pragma once
// Per-request token choice for the server, with OpenAI's semantics: greedy at temperature 0, otherwise the
// nucleus (top_p) of the temperature-scaled distribution and one draw from a seeded RNG; plus log-probabilities of
// the model's own distribution. (The CLI's llama.cpp-style chain, src/sample, cuts top-p before temperature and
// adds top-k, min-p and repetition penalties; argmax, logsumexp and the top-k listing are shared from there.)
#include <cstdint>
#include <random>
#include <vector>

namespace minnow::server {

struct SamplingParams {
  double temperature = 1.0;  // <= 0: greedy (argmax, lowest id on ties)
  double top_p = 1.0;        // (0, 1]
  uint64_t seed = 0;
  int top_logprobs = 0;      // 0..20 alternatives to report
  bool logprobs = false;     // report the chosen token's logprob
};

struct TokenLogprob {
  int32_t token;
  float logprob;  // log softmax of the raw logits (temperature 1)
};

struct SampleResult {
  int32_t token = -1;
  float logprob = 0;               // of `token`, when logprobs were asked for
  std::vector<TokenLogprob> top;   // [top_logprobs] most likely tokens, most likely first
};

class TokenSampler {
 public:
  explicit TokenSampler(const SamplingParams& p);
  SampleResult sample(const float* logits, int n_vocab);  // logits: [n_vocab]

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<float> probs_;    // [n_vocab] scratch
  std::vector<int32_t> order_;  // [n_vocab] scratch
  double uniform();             // [0, 1)
};

}  // namespace minnow::server
