// The CPU ops against their plain double-precision references, on fresh random inputs of awkward sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/ops.h"
#include "backend/cpu/ops_ref.h"
#include "quant/quant_ref.h"
#include "op_test_inputs.h"

using namespace minnow;

namespace {

using test::randv;
using test::rng;
using test::to_d;

}  // namespace

TEST(Ops, RmsNormMatchesReference) {
  for (int64_t n : {1, 7, 33, 255, 576, 1001}) {
    auto x = randv(n), w = randv(n);
    std::vector<float> y(n);
    rmsnorm_row(x.data(), w.data(), y.data(), n, 1e-5f);
    auto r = ref::rmsnorm(to_d(x), to_d(w), 1e-5);
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], r[i], 1e-5 * (1 + std::fabs(r[i]))) << n << " " << i;
    // in place gives the same
    std::vector<float> z = x;
    rmsnorm_row(z.data(), w.data(), z.data(), n, 1e-5f);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(z[i], y[i]);
  }
}

TEST(Ops, RmsNormIsNotLayerNorm) {
  // A shifted input must not be re-centred: rmsnorm(x + c) != rmsnorm(x) for c != 0.
  std::vector<float> x = {1, 2, 3, 4}, w = {1, 1, 1, 1}, y(4);
  rmsnorm_row(x.data(), w.data(), y.data(), 4, 0);
  const double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], x[i] / rms, 1e-6);
}

TEST(Ops, RopeMatchesReferenceBothModes) {
  std::uniform_int_distribution<int> P(0, 5000);
  for (auto mode : {RopeMode::Normal, RopeMode::NeoX}) {
    for (auto [heads, hd, nrot] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{3, 64, 64}, {5, 32, 32}, {2, 48, 16}, {1, 6, 6}}) {
      const int pos = P(rng());
      const double base = mode == RopeMode::Normal ? 10000.0 : 100000.0;
      const double fscale = pos % 2 ? 1.0 : 0.25;
      auto x = randv(static_cast<size_t>(heads * hd));
      std::vector<float> cs(static_cast<size_t>(nrot));
      rope_cos_sin(pos, nrot, base, fscale, cs.data());
      std::vector<float> y = x;
      rope_apply(y.data(), heads, hd, nrot, cs.data(), mode);
      auto r = ref::rope(to_d(x), heads, hd, nrot, pos, base, fscale, mode);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], r[i], 2e-5) << i;
    }
  }
}

TEST(Ops, RopeNormalRotatesAdjacentPairs) {
  // Position 1, a single pair (n_rot = 2): theta = 1 rad, acting on (x0, x1) only.
  std::vector<float> x = {1, 0, 5, 7}, cs(2);
  rope_cos_sin(1, 2, 10000.0, 1.0, cs.data());
  rope_apply(x.data(), 1, 4, 2, cs.data(), RopeMode::Normal);
  EXPECT_NEAR(x[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(x[1], std::sin(1.0), 1e-6);
  EXPECT_EQ(x[2], 5);  // beyond n_rot: untouched
  EXPECT_EQ(x[3], 7);
  // Position 0 is the identity.
  std::vector<float> y = {3, 4, 5, 6};
  cs.resize(4);
  rope_cos_sin(0, 4, 10000.0, 1.0, cs.data());
  rope_apply(y.data(), 1, 4, 4, cs.data(), RopeMode::Normal);
  EXPECT_EQ(y, (std::vector<float>{3, 4, 5, 6}));
}

TEST(Ops, SoftmaxMatchesReference) {
  for (int64_t n : {1, 2, 17, 1000, 32000}) {
    auto x = randv(static_cast<size_t>(n), -30, 30);
    auto r = ref::softmax(to_d(x));
    softmax_row(x.data(), n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_NEAR(x[i], r[i], 1e-6 + 1e-5 * r[i]);
      s += x[i];
    }
    EXPECT_NEAR(s, 1.0, 1e-5);
  }
}

TEST(Ops, SwigluMatchesReference) {
  for (int64_t n : {1, 13, 1536}) {
    auto g = randv(n, -10, 10), u = randv(n);
    std::vector<float> y(n);
    swiglu_row(g.data(), u.data(), y.data(), n);
    auto r = ref::swiglu(to_d(g), to_d(u));
    for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(y[i], r[i], 1e-5 * (1 + std::fabs(r[i])));
  }
}

TEST(Ops, F16TableMatchesConversion) {
  for (uint32_t h = 0; h < 65536; h += 7) {
    const float a = f16_to_f32_fast(static_cast<uint16_t>(h)), b = fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(b)) ASSERT_TRUE(std::isnan(a));
    else ASSERT_EQ(a, b);
  }
}

// The per-head attention kernel (attention_head) over an F16 cache, given a head mapping and scale, against
// the reference causal GQA attention. This checks the kernel's arithmetic only: the mapping and the scale the
// CPU backend really uses are checked on its own dumps by tests/py/test_attention_dump.py.
TEST(Ops, AttentionHeadKernelMatchesReference) {
  for (auto [n, nh, nkv, hd] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
           {1, 4, 4, 8}, {7, 8, 2, 32}, {19, 9, 3, 64}, {33, 6, 1, 16}}) {
    auto q = randv(static_cast<size_t>(n * nh * hd)), k = randv(static_cast<size_t>(n * nkv * hd)),
         v = randv(static_cast<size_t>(n * nkv * hd));
    // Round K and V through f16 like the cache; the reference sees the same rounded values.
    std::vector<uint16_t> kc(k.size()), vc(v.size());
    for (size_t i = 0; i < k.size(); ++i) {
      kc[i] = fp32_to_fp16(k[i]);
      k[i] = fp16_to_fp32(kc[i]);
      vc[i] = fp32_to_fp16(v[i]);
      v[i] = fp16_to_fp32(vc[i]);
    }
    auto r = ref::attention(to_d(q), to_d(k), to_d(v), n, nh, nkv, hd);
    std::vector<float> out(static_cast<size_t>(n * nh * hd)), scores(static_cast<size_t>(n));
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < nh; ++h) {
        const int64_t kvh = h / (nh / nkv);
        attention_head(q.data() + (t * nh + h) * hd, kc.data() + kvh * hd, vc.data() + kvh * hd, t + 1, hd, nkv * hd,
                       scale, scores.data(), out.data() + (t * nh + h) * hd);
      }
    for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], r[i], 1e-4) << n << " " << i;
  }
}
