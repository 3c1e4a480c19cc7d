#include "sample/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "common/error.h"

namespace minnow {

namespace {
bool by_logit_desc(const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
  return a.first != b.first ? a.first > b.first : a.second < b.second;
}
}  // namespace

void apply_repeat_penalty(float* logits, int64_t n_vocab, const std::vector<int32_t>& recent, double penalty) {
  if (penalty == 1.0) return;
  std::unordered_set<int32_t> seen;
  for (int32_t id : recent) {
    if (id < 0 || id >= n_vocab || !seen.insert(id).second) continue;
    float& l = logits[id];
    l = l <= 0 ? static_cast<float>(l * penalty) : static_cast<float>(l / penalty);
  }
}

int32_t argmax(const float* logits, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

double logsumexp(const float* logits, int64_t n) {
  float mx = logits[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, logits[i]);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(logits[i]) - mx);
  return mx + std::log(s);
}

void log_softmax(const float* logits, int64_t n, std::vector<float>& out) {
  const double lse = logsumexp(logits, n);
  out.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - lse);
}

std::vector<std::pair<int32_t, float>> top_k_logits(const float* logits, int64_t n, int64_t k) {
  k = std::clamp<int64_t>(k, 0, n);
  std::vector<std::pair<float, int32_t>> c(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) c[i] = {logits[i], static_cast<int32_t>(i)};
  std::partial_sort(c.begin(), c.begin() + k, c.end(), by_logit_desc);
  std::vector<std::pair<int32_t, float>> out(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) out[i] = {c[i].second, c[i].first};
  return out;
}

Sampler::Sampler(const SamplerParams& p, int64_t n_vocab) : p_(p), n_vocab_(n_vocab) {
  if (n_vocab <= 0) throw Error("sampler: empty vocabulary");
  if (!std::isfinite(p.temp)) throw Error("--temp must be a finite number");
  if (p.top_p < 0 || !std::isfinite(p.top_p)) throw Error("--top-p must be in [0, 1]");
  if (p.min_p < 0 || !std::isfinite(p.min_p)) throw Error("--min-p must be in [0, 1]");
  if (p.repeat_penalty <= 0 || !std::isfinite(p.repeat_penalty)) throw Error("--repeat-penalty must be positive");
  if (p.repeat_last_n < -1) throw Error("--repeat-last-n must be >= -1");
  if (p.seed < -1) throw Error("--seed must be >= -1");
  seed_ = p.seed == -1 ? (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()
                       : static_cast<uint64_t>(p.seed);
  rng_.seed(seed_);
}

void Sampler::accept(int32_t token) {
  if (p_.repeat_last_n == 0) return;
  history_.push_back(token);
  if (p_.repeat_last_n > 0)
    while (static_cast<int64_t>(history_.size()) > p_.repeat_last_n) history_.pop_front();
}

void Sampler::reset() { history_.clear(); }

int32_t Sampler::sample(const float* logits_in) {
  const int64_t n = n_vocab_;
  cand_.resize(static_cast<size_t>(n));
  std::vector<float> logits(logits_in, logits_in + n);
  apply_repeat_penalty(logits.data(), n, std::vector<int32_t>(history_.begin(), history_.end()), p_.repeat_penalty);
  if (p_.temp <= 0) return argmax(logits.data(), n);

  for (int64_t i = 0; i < n; ++i) cand_[i] = {logits[i], static_cast<int32_t>(i)};
  // top-k (sorted, largest first)
  size_t keep = static_cast<size_t>(n);
  if (p_.top_k > 0) keep = std::min<size_t>(keep, static_cast<size_t>(p_.top_k));
  std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(keep), cand_.end(), by_logit_desc);
  cand_.resize(keep);

  auto probs = [&]() {  // softmax over the current candidates
    std::vector<double> pr(cand_.size());
    double s = 0;
    for (size_t i = 0; i < cand_.size(); ++i) s += (pr[i] = std::exp(static_cast<double>(cand_[i].first) - cand_[0].first));
    for (double& v : pr) v /= s;
    return pr;
  };
  // top-p: the smallest prefix whose probability reaches p
  if (p_.top_p < 1.0) {
    const std::vector<double> pr = probs();
    double cum = 0;
    size_t last = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += pr[i];
      if (cum >= p_.top_p) {
        last = i + 1;
        break;
      }
    }
    cand_.resize(std::max<size_t>(1, last));
  }
  // min-p: drop tokens whose probability is below min_p times the largest
  if (p_.min_p > 0) {
    const float thr = cand_[0].first + static_cast<float>(std::log(p_.min_p));
    size_t last = 1;
    while (last < cand_.size() && cand_[last].first >= thr) ++last;
    cand_.resize(last);
  }
  // temperature, then the draw
  for (auto& c : cand_) c.first = static_cast<float>(c.first / p_.temp);
  const std::vector<double> pr = probs();
  std::uniform_real_distribution<double> U(0.0, 1.0);
  const double r = U(rng_);
  double cum = 0;
  for (size_t i = 0; i < cand_.size(); ++i) {
    cum += pr[i];
    if (r < cum) return cand_[i].second;
  }
  return cand_.back().second;
}

}  // namespace minnow
