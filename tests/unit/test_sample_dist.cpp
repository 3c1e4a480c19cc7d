// Sampling distributions, exactly: for the CLI's llama.cpp-style chain (src/sample: penalties, top-k, top-p,
// min-p, temperature) and the server's OpenAI-style sampler (temperature, then the nucleus), the set of ids a
// setting may draw and their probabilities are computed here from the definitions, in double, with no code
// shared with the samplers; then 20,000 draws with a fixed, printed seed must hit exactly that set and pass a
// chi-square test. Every truncation is tested with p strictly between 0 and 1, and each case's cut is checked
// to lie far from a boundary, so a sampler that keeps one token too many or too few fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>
#include <vector>

#include "sample/sampler.h"
#include "server/token_sampler.h"

using namespace minnow;

namespace {

constexpr int kDraws = 20000;

// Logits for 12 ids, deliberately not in id order; well separated so every cut below is unambiguous.
const std::vector<float> kLogits = {0.3f, 2.0f, -1.0f, 1.2f, -2.5f, 1.6f, 0.0f, -0.4f, 0.8f, -1.6f, 2.4f, -3.2f};

// Ids by decreasing value (lower id first on ties).
std::vector<int32_t> order_desc(const std::vector<double>& v) {
  std::vector<int32_t> ids(v.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return v[a] > v[b]; });
  return ids;
}

std::vector<double> softmax_over(const std::vector<double>& l, const std::vector<int32_t>& ids, double temp) {
  std::vector<double> p(l.size(), 0.0);
  double mx = -1e300, s = 0;
  for (int32_t i : ids) mx = std::max(mx, l[i]);
  for (int32_t i : ids) s += (p[i] = std::exp((l[i] - mx) / temp));
  for (int32_t i : ids) p[i] /= s;
  return p;
}

// Smallest prefix of `ids` (sorted by decreasing probability) whose mass reaches top_p; asserts the cut is
// not within 1e-3 of top_p (a case too close to call would not test anything).
size_t nucleus(const std::vector<double>& p, const std::vector<int32_t>& ids, double top_p) {
  double cum = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    cum += p[ids[i]];
    EXPECT_GT(std::abs(cum - top_p), 1e-3) << "test case too close to the top-p boundary";
    if (cum >= top_p) return i + 1;
  }
  return ids.size();
}

// The CLI chain from its definition: repetition penalty over the distinct ids of `window`, sort, top-k, top-p
// (probabilities at temperature 1 over what top-k kept), min-p (relative to the most likely), temperature.
std::vector<double> cli_expected(const SamplerParams& sp, const std::vector<int32_t>& window) {
  std::vector<double> l(kLogits.begin(), kLogits.end());
  std::set<int32_t> seen(window.begin(), window.end());
  for (int32_t id : seen) l[id] = l[id] > 0 ? l[id] / sp.repeat_penalty : l[id] * sp.repeat_penalty;
  std::vector<int32_t> ids = order_desc(l);
  if (sp.top_k > 0 && static_cast<size_t>(sp.top_k) < ids.size()) ids.resize(static_cast<size_t>(sp.top_k));
  if (sp.top_p < 1.0) ids.resize(nucleus(softmax_over(l, ids, 1.0), ids, sp.top_p));
  if (sp.min_p > 0) {
    const double top = l[ids[0]];
    std::vector<int32_t> kept;
    for (int32_t id : ids) {
      EXPECT_GT(std::abs(std::exp(l[id] - top) - sp.min_p), 1e-3) << "test case too close to the min-p boundary";
      if (std::exp(l[id] - top) >= sp.min_p) kept.push_back(id);
    }
    ids = kept;
  }
  return softmax_over(l, ids, sp.temp);
}

// The server's sampler from its definition: softmax(l / T), then the nucleus of that distribution.
std::vector<double> server_expected(double temp, double top_p) {
  std::vector<double> l(kLogits.begin(), kLogits.end());
  std::vector<int32_t> all(l.size());
  std::iota(all.begin(), all.end(), 0);
  const std::vector<double> p = softmax_over(l, all, temp);
  std::vector<int32_t> ids = order_desc(p);
  if (top_p < 1.0) ids.resize(nucleus(p, ids, top_p));
  return softmax_over(l, ids, temp);
}

// Chi-square critical value at significance 1e-4 (Wilson-Hilferty; z = 3.719).
double chi2_critical(int df) {
  const double k = df, z = 3.719;
  return k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3);
}

// Draws must fall exactly on the ids with expected probability > 0, and every such id must be drawn; then
// the chi-square statistic must stay under the critical value.
void check_draws(const std::vector<double>& expected, const std::vector<int>& counts, const std::string& what) {
  int support = 0;
  double chi2 = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    if (expected[i] == 0) {
      EXPECT_EQ(counts[i], 0) << what << ": id " << i << " is outside the allowed set";
      continue;
    }
    ++support;
    const double e = expected[i] * kDraws;
    ASSERT_GT(e, 20) << what << ": test case has an id too rare for the chi-square test";
    EXPECT_GT(counts[i], 0) << what << ": allowed id " << i << " never drawn";
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  std::printf("%s: %d allowed ids, chi2 = %.2f (critical %.2f)\n", what.c_str(), support, chi2,
              support > 1 ? chi2_critical(support - 1) : 0.0);
  if (support > 1) {
    EXPECT_LT(chi2, chi2_critical(support - 1)) << what;
  } else {
    EXPECT_EQ(counts[static_cast<size_t>(std::max_element(expected.begin(), expected.end()) - expected.begin())],
              kDraws)
        << what;
  }
}

struct CliCase {
  int top_k;
  double top_p, min_p, temp, penalty;
  int last_n;
  std::vector<int32_t> history;
  size_t expect_support;  // the allowed set's size (so the cases keep testing what they claim to)
};

}  // namespace

TEST(SampleDist, CliChainMatchesExactDistribution) {
  const std::vector<CliCase> cases = {
      {5, 1.0, 0.0, 1.0, 1.0, 64, {}, 5},               // top-k alone
      {0, 0.7, 0.0, 0.8, 1.0, 64, {}, 3},               // top-p alone (0 < p < 1)
      {0, 0.9, 0.0, 1.5, 1.0, 64, {}, 6},               // top-p, temperature above 1
      {0, 1.0, 0.15, 1.3, 1.0, 64, {}, 5},              // min-p alone
      {0, 1.0, 0.0, 1.0, 2.0, 64, {10, 2, 10, 1}, 12},  // penalties: positive (10, 1) and negative (2) logits
      {8, 0.85, 0.05, 0.7, 1.6, 3, {10, 4, 1, 5, 1}, 5},  // all at once; the window keeps only 1, 5, 1
  };
  uint64_t seed = 1000;
  for (const CliCase& c : cases) {
    SamplerParams sp;
    sp.top_k = c.top_k;
    sp.top_p = c.top_p;
    sp.min_p = c.min_p;
    sp.temp = c.temp;
    sp.repeat_penalty = c.penalty;
    sp.repeat_last_n = c.last_n;
    sp.seed = static_cast<int64_t>(++seed);
    Sampler s(sp, static_cast<int64_t>(kLogits.size()));
    for (int32_t t : c.history) s.accept(t);
    std::vector<int32_t> window = c.history;
    if (c.last_n > 0 && window.size() > static_cast<size_t>(c.last_n))
      window.erase(window.begin(), window.end() - c.last_n);
    const std::vector<double> expected = cli_expected(sp, window);
    std::vector<int> counts(kLogits.size(), 0);
    for (int i = 0; i < kDraws; ++i) counts[static_cast<size_t>(s.sample(kLogits.data()))]++;
    const std::string what = "cli seed " + std::to_string(sp.seed) + " k=" + std::to_string(c.top_k) +
                             " p=" + std::to_string(c.top_p) + " min_p=" + std::to_string(c.min_p) +
                             " T=" + std::to_string(c.temp) + " penalty=" + std::to_string(c.penalty);
    EXPECT_EQ(static_cast<size_t>(std::count_if(expected.begin(), expected.end(), [](double p) { return p > 0; })),
              c.expect_support)
        << what;
    check_draws(expected, counts, what);
  }
}

TEST(SampleDist, ServerSamplerMatchesExactDistribution) {
  const std::vector<std::pair<double, double>> cases = {  // (temperature, top_p)
      {1.0, 1.0}, {1.0, 0.5}, {0.7, 0.8}, {1.5, 0.9}, {1.2, 0.3}};
  const std::vector<size_t> support = {12, 2, 3, 7, 2};
  uint64_t seed = 2000;
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    server::SamplingParams sp;
    sp.temperature = cases[ci].first;
    sp.top_p = cases[ci].second;
    sp.seed = ++seed;
    server::TokenSampler s(sp);
    const std::vector<double> expected = server_expected(sp.temperature, sp.top_p);
    std::vector<int> counts(kLogits.size(), 0);
    for (int i = 0; i < kDraws; ++i)
      counts[static_cast<size_t>(s.sample(kLogits.data(), static_cast<int>(kLogits.size())).token)]++;
    const std::string what = "server seed " + std::to_string(sp.seed) + " T=" + std::to_string(sp.temperature) +
                             " top_p=" + std::to_string(sp.top_p);
    EXPECT_EQ(static_cast<size_t>(std::count_if(expected.begin(), expected.end(), [](double p) { return p > 0; })),
              support[ci])
        << what;
    check_draws(expected, counts, what);
  }
}
