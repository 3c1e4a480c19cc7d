// Backend::forward_top's ordering (top_ids: highest logit first, lower id on ties, NaN never listed) and the
// default forward_top (forward, then the list on the host; logits rows only for the rows not flagged).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "backend/backend.h"

using namespace minnow;

namespace {

std::vector<int32_t> reference_top(const std::vector<float>& row) {
  std::vector<std::pair<float, int32_t>> v;
  for (size_t i = 0; i < row.size(); ++i)
    if (!std::isnan(row[i])) v.push_back({row[i], static_cast<int32_t>(i)});
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  std::vector<int32_t> out(Backend::kTopIds, -1);
  for (size_t k = 0; k < out.size() && k < v.size(); ++k) out[k] = v[k].second;
  return out;
}

// Logits that depend only on (token, position), with ties and NaNs; no state, so passes can be repeated.
class StaticBackend : public Backend {
 public:
  std::string name() const override { return "static"; }
  size_t kv_cache_bytes() const override { return 0; }
  size_t weight_bytes() const override { return 0; }
  void seq_clear(int) override {}
  void forward(const Batch& b, std::vector<float>& logits) override {
    for (size_t i = 0; i < b.size(); ++i) {
      if (!b.want_logits[i]) continue;
      for (int v = 0; v < kV; ++v) {
        const uint32_t h = static_cast<uint32_t>(b.tokens[i] * 131 + b.pos[i] * 31 + v * 7) % 13;
        logits.push_back(h == 12 ? NAN : static_cast<float>(h % 5));
      }
    }
  }
  static constexpr int kV = 50;
};

}  // namespace

TEST(BackendTop, TopIdsMatchAFullSortWithTiesNansAndInfinities) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 300);
    std::vector<float> row(static_cast<size_t>(n));
    const int levels = 1 + static_cast<int>(rng() % 6);  // few distinct values: many ties
    for (auto& x : row) {
      const int r = static_cast<int>(rng() % 40);
      x = r == 0   ? NAN
          : r == 1 ? -INFINITY
          : r == 2 ? INFINITY
                   : static_cast<float>(static_cast<int>(rng() % levels)) - 2.f;
    }
    std::vector<int32_t> got(Backend::kTopIds);
    top_ids(row.data(), n, got.data());
    EXPECT_EQ(got, reference_top(row)) << "trial " << trial << ", n " << n;
  }
  std::vector<float> nans(5, NAN);
  std::vector<int32_t> got(Backend::kTopIds);
  top_ids(nans.data(), 5, got.data());
  EXPECT_EQ(got, std::vector<int32_t>(Backend::kTopIds, -1));
}

TEST(BackendTop, DefaultForwardTopListsEveryRowAndCopiesOnlyUnflaggedRows) {
  StaticBackend be;
  Batch b;
  b.add(5, 0, 0, true);
  b.add(6, 1, 0, false);
  b.add(7, 2, 0, true);
  b.add(9, 0, 1, true);
  std::vector<float> all;
  be.forward(b, all);
  const size_t V = all.size() / 3;
  std::vector<float> logits;
  std::vector<int32_t> top;
  be.forward_top(b, {1, 0, 1}, logits, top);
  ASSERT_EQ(top.size(), 3u * Backend::kTopIds);
  for (size_t r = 0; r < 3; ++r) {
    const std::vector<float> row(all.begin() + static_cast<std::ptrdiff_t>(r * V),
                                 all.begin() + static_cast<std::ptrdiff_t>((r + 1) * V));
    const std::vector<int32_t> want = reference_top(row);
    EXPECT_EQ(std::vector<int32_t>(top.begin() + static_cast<std::ptrdiff_t>(r * Backend::kTopIds),
                                   top.begin() + static_cast<std::ptrdiff_t>((r + 1) * Backend::kTopIds)),
              want)
        << "row " << r;
  }
  ASSERT_EQ(logits.size(), V);  // only the second wanted row
  EXPECT_EQ(std::memcmp(logits.data(), all.data() + V, V * sizeof(float)),
            0);  // bitwise (the rows hold NaNs)
  std::vector<int32_t> top2;
  EXPECT_THROW(be.forward_top(b, {1, 0}, logits, top2), std::exception);  // flag count must match
}
