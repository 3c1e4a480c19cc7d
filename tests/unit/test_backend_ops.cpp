// Cross-backend op tests, in the spirit of llama.cpp's tests/test-backend-ops.cpp: every op of the canonical
// layer (model/layer_spec.h), each feature flag included, runs on the plain double reference (ops_ref.h) and
// on every backend implementation, with fresh random inputs of awkward sizes (odd lengths, partial rotary
// dims, windows shorter and longer than the sequence).
//
// Backends: `impls()` lists them. The CPU (the host's SIMD path; MINNOW_SIMD picks another) is always there.
// CUDA hook: a CUDA build adds an OpImpl whose functions run the same op on the device (upload, kernel,
// download); without a GPU it is not listed and its cases skip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <tuple>
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

// One implementation of the ops, on float rows in host memory.
struct OpImpl {
  std::string name;
  std::function<void(const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps)> rmsnorm;
  std::function<void(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int32_t pos, double base,
                     double scale, const float* factors, RopeMode mode, float mscale)>
      rope;
  std::function<void(const float* gate, const float* up, float* out, int64_t n)> geglu_tanh, swiglu;
  std::function<void(float* x, const float* b, int64_t n)> add;
  std::function<void(float* x, int64_t n, float cap)> softcap;
  // Causal GQA attention over one sequence of n tokens with the given scale and window (0: none), K/V
  // rounded to f16 as a cache holds them.
  std::function<void(const float* q, const uint16_t* k, const uint16_t* v, float* out, int64_t n, int64_t nh,
                     int64_t nkv, int64_t hd, float scale, int64_t window)>
      attention;
};

OpImpl cpu_impl() {
  OpImpl c;
  c.name = "cpu";
  c.rmsnorm = [](const float* x, const float* w, float* y, int64_t rows, int64_t n, float eps) {
    for (int64_t r = 0; r < rows; ++r) rmsnorm_row(x + r * n, w, y + r * n, n, eps);
  };
  c.rope = [](float* x, int64_t nh, int64_t hd, int64_t n_rot, int32_t pos, double base, double scale,
              const float* factors, RopeMode mode, float mscale) {
    std::vector<float> cs(static_cast<size_t>(n_rot));
    rope_cos_sin(pos, n_rot, base, scale, factors, cs.data(), mscale);
    rope_apply(x, nh, hd, n_rot, cs.data(), mode);
  };
  c.geglu_tanh = geglu_tanh_row;
  c.swiglu = swiglu_row;
  c.add = add_row;
  c.softcap = softcap_row;
  c.attention = [](const float* q, const uint16_t* k, const uint16_t* v, float* out, int64_t n, int64_t nh,
                   int64_t nkv, int64_t hd, float scale, int64_t window) {
    std::vector<float> scores(static_cast<size_t>(n));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < nh; ++h) {
        const int64_t kvh = h / (nh / nkv);
        const int64_t first = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
        attention_head(q + (t * nh + h) * hd, k + first * nkv * hd + kvh * hd, v + first * nkv * hd + kvh * hd,
                       t + 1 - first, hd, nkv * hd, scale, scores.data(), out + (t * nh + h) * hd);
      }
  };
  return c;
}

std::vector<OpImpl> impls() {
  std::vector<OpImpl> v{cpu_impl()};
  // CUDA cases go here: `#ifdef MINNOW_HAVE_CUDA if (cuda_device_count() > 0) v.push_back(cuda_impl());`
  return v;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " at " << i;
}

}  // namespace

TEST(BackendOps, RmsNormRowsAndPerHead) {
  for (const OpImpl& b : impls())
    for (auto [rows, n] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 7}, {5, 64}, {2, 257}, {9, 31}}) {
      auto x = randv(static_cast<size_t>(rows * n)), w = randv(static_cast<size_t>(n));
      std::vector<float> y(x.size());
      b.rmsnorm(x.data(), w.data(), y.data(), rows, n, 1e-6f);
      // Rows of n with one shared weight: exactly the per-head Q/K norm over heads of head_dim n.
      expect_close(y, ref::rmsnorm_heads(to_d(x), to_d(w), rows, 1e-6), 1e-5, b.name + " rmsnorm");
    }
}

TEST(BackendOps, RopeBothStylesPartialRotaryAndFactors) {
  for (const OpImpl& b : impls())
    for (RopeMode mode : {RopeMode::Normal, RopeMode::NeoX})
      for (auto [nh, hd, n_rot] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
               {1, 2, 2}, {3, 10, 6}, {4, 32, 32}, {2, 96, 32}, {5, 64, 48}})
        for (bool with_factors : {false, true})
          for (int32_t pos : {0, 1, 17, 4093}) {
            auto x = randv(static_cast<size_t>(nh * hd));
            auto f = randv(static_cast<size_t>(n_rot / 2), 1.0f, 32.0f);
            const double base = with_factors ? 500000.0 : 10000.0, scale = with_factors ? 1.0 : 0.25;
            const float mscale = with_factors ? 1.1902f : 1.0f;  // LongRoPE's attention factor goes with factors
            auto want = ref::rope(to_d(x), nh, hd, n_rot, pos, base, scale, mode,
                                  with_factors ? to_d(f) : std::vector<double>{}, mscale);
            b.rope(x.data(), nh, hd, n_rot, pos, base, scale, with_factors ? f.data() : nullptr, mode, mscale);
            expect_close(x, want, 2e-5 + 1e-9 * pos, b.name + " rope");
          }
}

TEST(BackendOps, GatedActivations) {
  for (const OpImpl& b : impls())
    for (int64_t n : {1, 7, 33, 384, 1001}) {
      auto g = randv(static_cast<size_t>(n), -12.f, 12.f), u = randv(static_cast<size_t>(n));
      std::vector<float> y(g.size());
      b.geglu_tanh(g.data(), u.data(), y.data(), n);
      expect_close(y, ref::geglu_tanh(to_d(g), to_d(u)), 1e-5, b.name + " geglu_tanh");
      b.swiglu(g.data(), u.data(), y.data(), n);
      expect_close(y, ref::swiglu(to_d(g), to_d(u)), 1e-5, b.name + " swiglu");
    }
}

TEST(BackendOps, BiasAddAndSoftcap) {
  for (const OpImpl& b : impls())
    for (int64_t n : {1, 5, 130, 32001}) {
      auto x = randv(static_cast<size_t>(n), -100.f, 100.f), bias = randv(static_cast<size_t>(n));
      std::vector<double> want = to_d(x);
      for (int64_t i = 0; i < n; ++i) want[static_cast<size_t>(i)] += bias[static_cast<size_t>(i)];
      b.add(x.data(), bias.data(), n);
      expect_close(x, want, 1e-6, b.name + " add");
      auto y = x;
      b.softcap(y.data(), n, 30.0f);
      expect_close(y, ref::softcap(to_d(x), 30.0), 1e-5, b.name + " softcap");
    }
}

// Attention with GQA, a non-default scale and a sliding window (shorter than, equal to and longer than the
// sequence): the window keeps positions j with t - j < window.
TEST(BackendOps, AttentionScaleAndSlidingWindow) {
  for (const OpImpl& b : impls())
    for (auto [n, nh, nkv, hd, window] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{
             {1, 4, 4, 8, 1}, {7, 8, 2, 32, 3}, {19, 9, 3, 64, 16}, {33, 6, 1, 16, 33}, {40, 4, 1, 128, 5},
             {21, 4, 2, 24, 0}}) {
      auto q = randv(static_cast<size_t>(n * nh * hd)), k = randv(static_cast<size_t>(n * nkv * hd)),
           v = randv(static_cast<size_t>(n * nkv * hd));
      std::vector<uint16_t> kc(k.size()), vc(v.size());
      for (size_t i = 0; i < k.size(); ++i) {
        kc[i] = fp32_to_fp16(k[i]);
        k[i] = fp16_to_fp32(kc[i]);
        vc[i] = fp32_to_fp16(v[i]);
        v[i] = fp16_to_fp32(vc[i]);
      }
      const double scale = 0.7 / std::sqrt(static_cast<double>(hd));
      auto want = ref::attention(to_d(q), to_d(k), to_d(v), n, nh, nkv, hd, scale, window);
      std::vector<float> out(q.size());
      b.attention(q.data(), kc.data(), vc.data(), out.data(), n, nh, nkv, hd, static_cast<float>(scale), window);
      for (size_t i = 0; i < out.size(); ++i)
        ASSERT_NEAR(out[i], want[i], 1e-4) << b.name << " n=" << n << " window=" << window << " at " << i;
    }
}

// The reference itself: a window of 1 sees only the token itself, so the output is its own V row.
TEST(BackendOps, ReferenceWindowOfOneIsOwnValue) {
  const int64_t n = 5, hd = 4;
  auto q = to_d(randv(n * hd)), k = to_d(randv(n * hd)), v = to_d(randv(n * hd));
  auto out = ref::attention(q, k, v, n, 1, 1, hd, 0.5, 1);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], v[i], 1e-12);
}
