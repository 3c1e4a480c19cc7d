// The quantized matmul kernels (every SIMD level the CPU supports) against the scalar reference:
//  - bit-identical to the scalar integer path (the canonical arithmetic of src/quant/simd/qdot.h);
//  - batch invariant: a token's row is the same alone or inside any batch;
//  - within the error the 8-bit activation rounding allows of quant_ref's double-precision dot product.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/matmul.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "quant/quant_ref.h"
#include "quant/simd/simd_level.h"

using namespace minnow;

namespace {

const GgmlType kQuantTypes[] = {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                                GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

std::vector<float> random_floats(std::mt19937& rng, size_t n, float scale) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& f : v) f = nd(rng);
  return v;
}

// Weights from the reference quantizer on gaussian data (with some rows of very different magnitude).
std::vector<uint8_t> make_weights(std::mt19937& rng, GgmlType t, int64_t n_in, int64_t n_out) {
  const size_t rb = row_bytes(t, n_in);
  std::vector<uint8_t> w(rb * static_cast<size_t>(n_out));
  for (int64_t r = 0; r < n_out; ++r) {
    auto f = random_floats(rng, static_cast<size_t>(n_in), r % 5 == 0 ? 3.0f : 0.05f);
    quantize_row_ref(t, f.data(), w.data() + static_cast<size_t>(r) * rb, n_in);
  }
  return w;
}

// Random bytes everywhere, with every fp16 scale field replaced by a small finite random half: reaches
// quant values and scale combinations the quantizer never writes (Q8_0's -128, extreme 6-bit scales...).
std::vector<uint8_t> random_blocks(std::mt19937& rng, GgmlType t, int64_t n_in, int64_t n_out) {
  const size_t rb = row_bytes(t, n_in);
  std::vector<uint8_t> w(rb * static_cast<size_t>(n_out));
  for (auto& b : w) b = static_cast<uint8_t>(rng());
  std::vector<size_t> f16;
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: f16 = {0}; break;
    case GgmlType::Q4_1: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K: f16 = {0, 2}; break;
    case GgmlType::Q2_K: f16 = {80, 82}; break;
    case GgmlType::Q3_K: f16 = {108}; break;
    case GgmlType::Q6_K: f16 = {208}; break;
    default: break;
  }
  const size_t bsz = traits(t).type_size;
  std::uniform_real_distribution<float> ud(-0.01f, 0.01f);
  for (size_t off = 0; off < w.size(); off += bsz)
    for (size_t o : f16) {
      const uint16_t h = fp32_to_fp16(ud(rng));
      std::memcpy(&w[off + o], &h, 2);
    }
  return w;
}

// |dot(w, x) - dot(w, x~)| where x~ is x rounded to 8 bits per block: each |x_i - x~_i| <= d/2 with
// d = max|x_block| / 127, so the error is at most sum_blocks d/2 * sum_i |w_i|. Float accumulation of
// the (exact) integer sums adds a relative error of a few ulps of the magnitude sum |w_i x_i|.
double error_bound(GgmlType t, const void* wrow, const float* x, int64_t n_in) {
  std::vector<float> w(static_cast<size_t>(n_in));
  dequantize_row_ref(t, wrow, w.data(), n_in);
  const int64_t bs = (t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q4_K || t == GgmlType::Q5_K ||
                      t == GgmlType::Q6_K) ? 256 : 32;
  double bound = 0, mag = 0;
  for (int64_t b = 0; b < n_in; b += bs) {
    double amax = 0, wsum = 0;
    for (int64_t i = b; i < b + bs; ++i) {
      amax = std::max(amax, std::fabs(static_cast<double>(x[i])));
      wsum += std::fabs(static_cast<double>(w[static_cast<size_t>(i)]));
      mag += std::fabs(static_cast<double>(w[static_cast<size_t>(i)]) * x[i]);
    }
    bound += amax / 127.0 / 2.0 * wsum;
  }
  return bound * 1.0001 + mag * 1e-5 + 1e-30;
}

struct Case {
  int64_t n_in, n_out, n_batch;
};

void check_type(GgmlType t, bool raw_blocks, uint32_t seed) {
  const bool k = traits(t).block_size == 256;
  const Case cases[] = {
      {k ? 256 : 32, 1, 1}, {k ? 768 : 224, 17, 3}, {k ? 1280 : 288, 33, 13}, {k ? 512 : 96, 9, 71}, {k ? 512 : 64, 35, 300},  // 300: more than one token chunk
  };
  ThreadPool pool2(2), pool3(3);
  std::mt19937 rng(seed);
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(type_name(t)) + " n_in=" + std::to_string(c.n_in) + " n_out=" +
                 std::to_string(c.n_out) + " n_batch=" + std::to_string(c.n_batch));
    auto w = raw_blocks ? random_blocks(rng, t, c.n_in, c.n_out) : make_weights(rng, t, c.n_in, c.n_out);
    auto x = random_floats(rng, static_cast<size_t>(c.n_in * c.n_batch), 1.0f);
    if (c.n_batch > 2) {  // a zero row and a row with one huge value
      std::fill(x.begin() + c.n_in, x.begin() + 2 * c.n_in, 0.0f);
      x[static_cast<size_t>(2 * c.n_in + 5)] = 1000.0f;
    }
    const size_t ny = static_cast<size_t>(c.n_out * c.n_batch);
    std::vector<float> ref(ny), scalar(ny);
    matmul_ref(t, w.data(), c.n_in, c.n_out, x.data(), ref.data(), c.n_batch);
    matmul_level(SimdLevel::Scalar, t, w.data(), c.n_in, c.n_out, x.data(), scalar.data(), c.n_batch, pool2);
    const size_t rb = row_bytes(t, c.n_in);
    for (int64_t b = 0; b < c.n_batch; ++b)
      for (int64_t o = 0; o < c.n_out; ++o) {
        const size_t i = static_cast<size_t>(b * c.n_out + o);
        const double bound = error_bound(t, w.data() + static_cast<size_t>(o) * rb, x.data() + b * c.n_in, c.n_in);
        ASSERT_LE(std::fabs(static_cast<double>(scalar[i]) - ref[i]), bound) << "b=" << b << " o=" << o;
      }
    for (SimdLevel l : simd_supported_levels()) {
      SCOPED_TRACE(simd_level_name(l));
      std::vector<float> y(ny, -1.0f);
      matmul_level(l, t, w.data(), c.n_in, c.n_out, x.data(), y.data(), c.n_batch, pool3);
      ASSERT_EQ(0, std::memcmp(y.data(), scalar.data(), ny * sizeof(float))) << "not bit-identical to scalar";
      // batch invariance: each token alone
      for (int64_t b = 0; b < c.n_batch; ++b) {
        std::vector<float> y1(static_cast<size_t>(c.n_out));
        matmul_level(l, t, w.data(), c.n_in, c.n_out, x.data() + b * c.n_in, y1.data(), 1, pool2);
        ASSERT_EQ(0, std::memcmp(y1.data(), y.data() + b * c.n_out, y1.size() * sizeof(float))) << "token " << b;
      }
    }
  }
}

}  // namespace

class QuantMatmul : public ::testing::TestWithParam<GgmlType> {};

TEST_P(QuantMatmul, QuantizerWeights) { check_type(GetParam(), false, 1234u + static_cast<uint32_t>(GetParam())); }
TEST_P(QuantMatmul, RandomBlocks) { check_type(GetParam(), true, 999u + static_cast<uint32_t>(GetParam())); }

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantMatmul, ::testing::ValuesIn(kQuantTypes),
                         [](const ::testing::TestParamInfo<GgmlType>& i) { return std::string(type_name(i.param)); });

TEST(FloatMatmul, MatchesReferenceAndIsBatchInvariant) {
  std::mt19937 rng(7);
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) {
    const int64_t n_in = 67, n_out = 13, n_batch = 5;
    auto f = random_floats(rng, static_cast<size_t>(n_in * n_out), 1.0f);
    std::vector<uint8_t> w(row_bytes(t, n_in) * n_out);
    quantize_row_ref(t, f.data(), w.data(), n_in * n_out);
    auto x = random_floats(rng, static_cast<size_t>(n_in * n_batch), 1.0f);
    std::vector<float> ref(static_cast<size_t>(n_out * n_batch)), y(ref.size());
    ThreadPool pool(2);
    matmul_ref(t, w.data(), n_in, n_out, x.data(), ref.data(), n_batch);
    matmul(t, w.data(), n_in, n_out, x.data(), y.data(), n_batch, pool);
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-4 * (1 + std::fabs(ref[i])));
    std::vector<float> y1(static_cast<size_t>(n_out));
    matmul(t, w.data(), n_in, n_out, x.data() + 3 * n_in, y1.data(), 1, pool);
    EXPECT_EQ(0, std::memcmp(y1.data(), y.data() + 3 * n_out, y1.size() * sizeof(float)));
  }
}

TEST(SimdLevel, ParseAndSelect) {
  EXPECT_EQ(parse_simd_level("scalar"), SimdLevel::Scalar);
  EXPECT_EQ(parse_simd_level("avx512"), SimdLevel::Avx512);
  EXPECT_THROW(parse_simd_level("sse9"), Error);
  EXPECT_TRUE(simd_level_supported(SimdLevel::Scalar));
  const SimdLevel before = simd_level();
  set_simd_level(SimdLevel::Scalar);
  EXPECT_EQ(simd_level(), SimdLevel::Scalar);
  set_simd_level(before);
}

TEST(Matmul, BadShapeThrows) {
  ThreadPool pool(1);
  std::vector<uint8_t> w(1000);
  std::vector<float> x(100), y(10);
  EXPECT_THROW(matmul(GgmlType::Q4_K, w.data(), 100, 1, x.data(), y.data(), 1, pool), Error);
}
