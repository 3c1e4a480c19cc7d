// MINNOW_ACT_BITS=16 (two 8-bit passes over the activations, src/quant/simd/act_quant.h) in the CPU matmul:
//  - within the error a 16-bit activation rounding allows of quant_ref's double-precision dot product, and
//    so at least 100x closer to it than the 8-bit bound;
//  - the same bits on every SIMD level the CPU supports, and batch invariant;
//  - any other value of MINNOW_ACT_BITS is a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "backend/cpu/matmul.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "quant/quant_ref.h"
#include "quant/simd/act_quant.h"
#include "quant/simd/simd_level.h"

using namespace minnow;

namespace {

// Every process of this executable runs its matmuls with two passes (act_bits() reads the variable once).
const bool kEnvSet = [] { return setenv("MINNOW_ACT_BITS", "16", 1) == 0; }();

const GgmlType kTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                           GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

bool k_quant(GgmlType t) {
  return t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q4_K || t == GgmlType::Q5_K ||
         t == GgmlType::Q6_K;
}

// Per block: the first pass leaves |r_i| <= d/2 (d = max|x| / 127), the second rounds r to steps of
// max|r| / 127, so each activation is off by at most d / 508 (plus float rounding of r): the error is at
// most sum_blocks d/508 * sum|w_i|, plus a few ulps of sum |w_i x_i| from the float accumulation.
double bound16(GgmlType t, const uint8_t* wrow, const float* x, int64_t n_in, double* bound8) {
  std::vector<float> w(static_cast<size_t>(n_in));
  dequantize_row_ref(t, wrow, w.data(), n_in);
  const int64_t bs = k_quant(t) ? 256 : 32;
  double b16 = 0, b8 = 0, mag = 0;
  for (int64_t b = 0; b < n_in; b += bs) {
    double amax = 0, wsum = 0;
    for (int64_t i = b; i < b + bs; ++i) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
      wsum += std::fabs(static_cast<double>(w[static_cast<size_t>(i)]));
      mag += std::fabs(static_cast<double>(w[static_cast<size_t>(i)]) * x[i]);
    }
    const double d = amax / 127.0;
    b16 += d / 508.0 * 1.001 * wsum;
    b8 += d / 2.0 * wsum;
  }
  *bound8 = b8;
  return b16 + 1e-5 * mag;
}

TEST(MatmulAct16, CloseToDoubleReferenceOnEveryLevelAndBatchInvariant) {
  ASSERT_TRUE(kEnvSet);
  ASSERT_EQ(act_bits(), 16);
  std::mt19937 rng(7);
  ThreadPool pool(2);
  const int64_t n_out = 37, n_batch = 9;
  for (GgmlType t : kTypes) {
    const int64_t n_in = k_quant(t) ? 512 : 96;
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> wf(static_cast<size_t>(n_in));
    const size_t rb = row_bytes(t, n_in);
    std::vector<uint8_t> W(rb * static_cast<size_t>(n_out));
    for (int64_t r = 0; r < n_out; ++r) {
      for (auto& f : wf) f = nd(rng) * (r % 5 == 0 ? 3.0f : 0.05f);
      quantize_row_ref(t, wf.data(), W.data() + static_cast<size_t>(r) * rb, n_in);
    }
    std::vector<float> x(static_cast<size_t>(n_in * n_batch));
    for (size_t i = 0; i < x.size(); ++i) x[i] = nd(rng) * (i % 29 == 0 ? 20.0f : 1.0f);  // some outliers
    std::vector<float> ref(static_cast<size_t>(n_out * n_batch));
    matmul_ref(t, W.data(), n_in, n_out, x.data(), ref.data(), n_batch);

    std::vector<float> first;
    for (SimdLevel level : simd_supported_levels()) {
      std::vector<float> y(ref.size());
      matmul_level(level, t, W.data(), n_in, n_out, x.data(), y.data(), n_batch, pool);
      double worst_ratio = 0;
      for (int64_t b = 0; b < n_batch; ++b)
        for (int64_t r = 0; r < n_out; ++r) {
          double b8 = 0;
          const double b16 = bound16(t, W.data() + static_cast<size_t>(r) * rb, x.data() + b * n_in, n_in, &b8);
          const double err = std::fabs(static_cast<double>(y[b * n_out + r]) - ref[b * n_out + r]);
          ASSERT_LE(err, b16) << type_name(t) << " " << simd_level_name(level) << " row " << r << " token " << b;
          worst_ratio = std::max(worst_ratio, b16 / b8);
        }
      EXPECT_LT(worst_ratio, 0.01) << type_name(t);
      if (first.empty()) {
        first = y;
      } else {
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_EQ(y[i], first[i]) << type_name(t) << " " << simd_level_name(level) << " differs from scalar";
      }
      // Batch invariance: each token alone gives the same bits.
      for (int64_t b = 0; b < n_batch; ++b) {
        std::vector<float> one(static_cast<size_t>(n_out));
        matmul_level(level, t, W.data(), n_in, n_out, x.data() + b * n_in, one.data(), 1, pool);
        for (int64_t r = 0; r < n_out; ++r)
          ASSERT_EQ(one[static_cast<size_t>(r)], y[b * n_out + r]) << type_name(t) << " token " << b;
      }
    }
  }
}

TEST(MatmulAct16, OtherValuesAreAnError) {
  EXPECT_EQ(parse_act_bits("8"), 8);
  EXPECT_EQ(parse_act_bits("16"), 16);
  for (const char* bad : {"", "12", "16 ", "eight", "-8"}) EXPECT_THROW(parse_act_bits(bad), Error) << bad;
}

}  // namespace
