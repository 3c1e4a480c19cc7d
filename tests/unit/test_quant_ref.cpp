// Reference formats: half conversions, round-trip error per type (bounded and ordered), dot products,
// error handling. Bit-exact decoding against an independent decoder is in tests/py/test_quant_formats.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "common/error.h"
#include "quant/quant_ref.h"

using namespace minnow;

namespace {

const GgmlType kBlockTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                                GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

std::vector<float> gaussian(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, sd);
  std::vector<float> x(n);
  for (auto& v : x) v = g(rng);
  return x;
}

double rmse_round_trip(GgmlType t, const std::vector<float>& x) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(row_bytes(t, n));
  quantize_row_ref(t, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  dequantize_row_ref(t, q.data(), y.data(), n);
  double se = 0;
  for (size_t i = 0; i < x.size(); ++i) se += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
  return std::sqrt(se / static_cast<double>(x.size()));
}

// Half value of bits h computed from the definition (sign * 2^e * 1.m), independent of fp16_to_fp32.
double half_value(uint16_t h) {
  const int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
  return sign ? -v : v;
}

}  // namespace

TEST(Fp16, DecodesEveryFiniteHalfExactly) {
  for (uint32_t h = 0; h < 65536; ++h) {
    if (((h >> 10) & 31) == 31) continue;
    ASSERT_EQ(static_cast<double>(fp16_to_fp32(static_cast<uint16_t>(h))), half_value(static_cast<uint16_t>(h))) << h;
  }
  EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7C00)));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7E00)));
}

TEST(Fp16, EncodesToNearestEven) {
  // Every finite half survives a round trip; values between neighbours go to the nearer (even on ties).
  for (uint32_t h = 0; h < 0x7C00; ++h) {
    const float f = fp16_to_fp32(static_cast<uint16_t>(h));
    ASSERT_EQ(fp32_to_fp16(f), h);
    ASSERT_EQ(fp32_to_fp16(-f), h | 0x8000);
    if (h + 1 < 0x7C00) {
      const double a = half_value(static_cast<uint16_t>(h)), b = half_value(static_cast<uint16_t>(h + 1));
      const float mid = static_cast<float>((a + b) / 2);  // exact in f32
      ASSERT_EQ(fp32_to_fp16(mid), (h & 1) ? h + 1 : h) << h;
      ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 0.0f)), h) << h;
      ASSERT_EQ(fp32_to_fp16(std::nextafter(mid, 1e9f)), h + 1) << h;
    }
  }
  EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7C00);  // rounds up to infinity
  EXPECT_EQ(fp32_to_fp16(1e-9f), 0);
  EXPECT_EQ(fp32_to_fp16(INFINITY), 0x7C00);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(NAN))));
}

TEST(Bf16, RoundsToNearestEven) {
  std::mt19937 rng(3);
  for (int i = 0; i < 100000; ++i) {
    uint32_t u = rng();
    float f;
    std::memcpy(&f, &u, 4);
    if (std::isnan(f)) continue;
    const uint16_t b = fp32_to_bf16(f);
    // The result is one of the two bf16 neighbours of f, and the nearer one.
    const double lo = bf16_to_fp32(static_cast<uint16_t>(u >> 16));
    const double hi = bf16_to_fp32(static_cast<uint16_t>((u >> 16) + 1));
    const double got = bf16_to_fp32(b);
    if (std::isinf(hi) && !std::isinf(f)) continue;  // near the top of the range
    ASSERT_TRUE(got == lo || got == hi) << f;
    ASSERT_LE(std::fabs(got - f), std::fabs((got == lo ? hi : lo) - f)) << f;
  }
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
}

TEST(QuantRef, RoundTripErrorIsBoundedAndOrdered) {
  // Awkward size: 37 super-blocks (a multiple of both 32 and 256).
  const auto x = gaussian(256 * 37, 12345);
  std::map<GgmlType, double> e;
  for (GgmlType t : kBlockTypes) e[t] = rmse_round_trip(t, x);
  // Bounds for unit gaussians (ggml's quantizers land at about 0.005, 0.018, 0.036, 0.072, 0.15, 0.30).
  EXPECT_LT(e[GgmlType::Q8_0], 0.007);
  EXPECT_LT(e[GgmlType::Q6_K], 0.022);
  EXPECT_LT(e[GgmlType::Q5_K], 0.042);
  EXPECT_LT(e[GgmlType::Q5_1], 0.045);
  EXPECT_LT(e[GgmlType::Q5_0], 0.05);
  EXPECT_LT(e[GgmlType::Q4_K], 0.080);
  EXPECT_LT(e[GgmlType::Q4_1], 0.09);
  EXPECT_LT(e[GgmlType::Q4_0], 0.10);
  EXPECT_LT(e[GgmlType::Q3_K], 0.17);
  EXPECT_LT(e[GgmlType::Q2_K], 0.34);
  EXPECT_LT(e[GgmlType::Q8_0], e[GgmlType::Q6_K]);
  EXPECT_LT(e[GgmlType::Q6_K], e[GgmlType::Q5_K]);
  EXPECT_LT(e[GgmlType::Q5_K], e[GgmlType::Q4_K]);
  EXPECT_LT(e[GgmlType::Q4_K], e[GgmlType::Q3_K]);
  EXPECT_LT(e[GgmlType::Q3_K], e[GgmlType::Q2_K]);
  EXPECT_LT(e[GgmlType::Q5_K], e[GgmlType::Q5_0]);
  EXPECT_LT(e[GgmlType::Q4_K], e[GgmlType::Q4_0]);
  EXPECT_LT(e[GgmlType::Q5_0], e[GgmlType::Q4_0]);
  for (auto [t, v] : e) EXPECT_GT(v, 0.0) << type_name(t);  // nothing is lossless: the test can fail
}

TEST(QuantRef, ErrorScalesWithData) {
  // Relative error does not depend on the magnitude of the data (as long as the fp16 scales stay normal).
  for (GgmlType t : kBlockTypes) {
    const auto a = gaussian(512 * 3, 7, 1.0f);
    for (float k : {0.1f, 30.0f}) {
      std::vector<float> b(a.size());
      for (size_t i = 0; i < a.size(); ++i) b[i] = a[i] * k;
      const double ra = rmse_round_trip(t, a), rb = rmse_round_trip(t, b) / k;
      EXPECT_NEAR(ra, rb, 0.05 * ra) << type_name(t) << " x" << k;
    }
  }
}

TEST(QuantRef, ZerosAndConstantsSurvive) {
  for (GgmlType t : kBlockTypes) {
    std::vector<float> z(512, 0.0f), y(512, 1.0f);
    std::vector<uint8_t> q(row_bytes(t, 512));
    quantize_row_ref(t, z.data(), q.data(), 512);
    dequantize_row_ref(t, q.data(), y.data(), 512);
    for (float v : y) ASSERT_EQ(v, 0.0f) << type_name(t);
    std::vector<float> c(512, -0.75f);
    quantize_row_ref(t, c.data(), q.data(), 512);
    dequantize_row_ref(t, q.data(), y.data(), 512);
    for (float v : y) ASSERT_NEAR(v, -0.75f, 0.75 * 0.02) << type_name(t);
  }
}

TEST(QuantRef, DotEqualsDequantizedSum) {
  for (GgmlType t : kBlockTypes) {
    const int64_t n = 256 * 5;
    const auto w = gaussian(static_cast<size_t>(n), 21);
    const auto x = gaussian(static_cast<size_t>(n), 22);
    std::vector<uint8_t> q(row_bytes(t, n));
    quantize_row_ref(t, w.data(), q.data(), n);
    std::vector<float> wd(static_cast<size_t>(n));
    dequantize_row_ref(t, q.data(), wd.data(), n);
    double want = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) {
      want += static_cast<double>(wd[i]) * x[i];
      mag += std::fabs(static_cast<double>(wd[i]) * x[i]);
    }
    EXPECT_NEAR(dot_row_ref(t, q.data(), x.data(), n), want, 1e-12 * mag) << type_name(t);
  }
  // Plain float types too, with a length that is not a multiple of 256.
  const int64_t n = 1000;
  const auto w = gaussian(n, 31), x = gaussian(n, 32);
  std::vector<uint16_t> h(n);
  double want = 0;
  for (int64_t i = 0; i < n; ++i) {
    h[i] = fp32_to_fp16(w[i]);
    want += static_cast<double>(fp16_to_fp32(h[i])) * x[i];
  }
  EXPECT_NEAR(dot_row_ref(GgmlType::F16, h.data(), x.data(), n), want, 1e-9);
  double want32 = 0;
  for (int64_t i = 0; i < n; ++i) want32 += static_cast<double>(w[i]) * x[i];
  EXPECT_NEAR(dot_row_ref(GgmlType::F32, w.data(), x.data(), n), want32, 1e-9);
}

TEST(QuantRef, RejectsUnsupportedTypesAndBadLengths) {
  std::vector<uint8_t> buf(4096);
  std::vector<float> f(1024);
  EXPECT_THROW(dequantize_row_ref(GgmlType::Q8_K, buf.data(), f.data(), 256), Error);
  EXPECT_THROW(dequantize_row_ref(GgmlType::I32, buf.data(), f.data(), 256), Error);
  EXPECT_THROW(dequantize_row_ref(static_cast<GgmlType>(99), buf.data(), f.data(), 256), Error);
  EXPECT_THROW(quantize_row_ref(GgmlType::Q8_1, f.data(), buf.data(), 32), Error);
  EXPECT_THROW(dequantize_row_ref(GgmlType::Q4_K, buf.data(), f.data(), 100), Error);
  EXPECT_THROW(quantize_row_ref(GgmlType::Q4_0, f.data(), buf.data(), 33), Error);
  EXPECT_THROW(dot_row_ref(GgmlType::Q6_K, buf.data(), f.data(), 128), Error);
}
