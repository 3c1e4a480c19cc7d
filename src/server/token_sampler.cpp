#include "server/token_sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sample/sampler.h"

namespace minnow::server {

TokenSampler::TokenSampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}

double TokenSampler::uniform() { return static_cast<double>(rng_() >> 11) * (1.0 / 9007199254740992.0); }

SampleResult TokenSampler::sample(const float* logits, int n_vocab) {
  SampleResult r;
  if (p_.temperature <= 0) {
    r.token = argmax(logits, n_vocab);
  } else {
    // Softmax of logits / T (in double for the normaliser), then the nucleus, then one uniform draw.
    probs_.resize(static_cast<size_t>(n_vocab));
    float mx = logits[argmax(logits, n_vocab)];
    double inv_t = 1.0 / p_.temperature, sum = 0;
    for (int i = 0; i < n_vocab; ++i) {
      float e = static_cast<float>(std::exp((static_cast<double>(logits[i]) - mx) * inv_t));
      probs_[i] = e;
      sum += e;
    }
    double u = uniform();
    if (p_.top_p >= 1.0) {
      double target = u * sum, acc = 0;
      r.token = n_vocab - 1;
      for (int i = 0; i < n_vocab; ++i) {
        acc += probs_[i];
        if (acc > target) {
          r.token = i;
          break;
        }
      }
    } else {
      order_.resize(static_cast<size_t>(n_vocab));
      std::iota(order_.begin(), order_.end(), 0);
      std::sort(order_.begin(), order_.end(),
                [&](int32_t a, int32_t b) { return probs_[a] != probs_[b] ? probs_[a] > probs_[b] : a < b; });
      double keep_mass = p_.top_p * sum, acc = 0;
      size_t n_keep = 0;
      while (n_keep < order_.size()) {
        acc += probs_[order_[n_keep]];
        ++n_keep;
        if (acc >= keep_mass) break;
      }
      double target = u * acc, acc2 = 0;
      r.token = order_[n_keep - 1];
      for (size_t k = 0; k < n_keep; ++k) {
        acc2 += probs_[order_[k]];
        if (acc2 > target) {
          r.token = order_[k];
          break;
        }
      }
    }
  }
  if (p_.logprobs || p_.top_logprobs > 0) {  // of the model's own distribution (temperature 1)
    const double lse = logsumexp(logits, n_vocab);
    r.logprob = static_cast<float>(logits[r.token] - lse);
    for (const auto& [id, logit] : top_k_logits(logits, n_vocab, std::min(p_.top_logprobs, n_vocab)))
      r.top.push_back({id, static_cast<float>(logit - lse)});
  }
  return r;
}

}  // namespace minnow::server
