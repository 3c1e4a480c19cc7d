// The int8 tensor-core GEMM (cuda::quantize_q8 + cuda::gemm_q8) against plain CPU references on fresh random
// inputs of awkward sizes, outputs poisoned (NaN) first: the activation quantisation against the host's, the
// GEMM against quant_ref's dequantised weights times the GPU's own int8 activations (double accumulation), the
// Add and SwiGLU epilogues, several matrices per launch, and bitwise batch invariance. Then [perf] lines (not
// asserted) for TinyLlama-1.1B shapes against the dequant-to-f16 + cuBLAS path. Skips without a GPU; compiles
// to a single skipped test in builds without CUDA.
#include <gtest/gtest.h>

#ifdef MINNOW_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_kernels.h"
#include "cuda_test_util.h"
#include "common/error.h"
#include "quant/quant_ref.h"

using namespace minnow;
using namespace minnow::cuda_test;

namespace {




// A random quantized matrix: dequantized values (quant_ref) and the device copy (device layout).
struct Mat {
  GgmlType type;
  int n_in, n_out;
  std::vector<float> deq;  // [n_out][n_in]
  std::unique_ptr<Dev> dev;
};
Mat make_mat(GgmlType t, int n_in, int n_out) {
  Mat m{t, n_in, n_out, {}, nullptr};
  const size_t rb = row_bytes(t, n_in);
  std::vector<uint8_t> raw(rb * n_out);
  m.deq.resize(size_t(n_in) * n_out);
  for (int r = 0; r < n_out; ++r) {
    auto v = randn(n_in, 0.5f);
    quantize_row_ref(t, v.data(), raw.data() + rb * r, n_in);
    dequantize_row_ref(t, raw.data() + rb * r, m.deq.data() + size_t(r) * n_in, n_in);
  }
  std::vector<uint8_t> packed(cuda::dev_row_bytes(t, n_in) * n_out);
  cuda::repack_rows(t, raw.data(), n_in, n_out, packed.data());
  m.dev = upload(packed);
  return m;
}

// Quantised activations on the device and their host copies.
struct Act {
  int nt = 0, n_in = 0;
  std::unique_ptr<Dev> q, s;
  std::vector<int8_t> hq;  // [nt][n_in]
  std::vector<float> hs;   // [nt][n_in/32][2]
};
Act quantize(const std::vector<float>& x, int nt, int n_in, const Dev* norm, float eps) {
  Act a;
  a.nt = nt;
  a.n_in = n_in;
  auto dx = upload(x);
  a.q = std::make_unique<Dev>(size_t(nt) * n_in);
  a.s = std::make_unique<Dev>(sizeof(float) * size_t(nt) * (n_in / 32) * 2);
  a.q->poison();
  a.s->poison();
  cuda::quantize_q8(dx->as<float>(), n_in, nt, n_in, norm ? norm->as<float>() : nullptr, eps, a.q->as<int8_t>(),
                    a.s->as<float>(), nullptr);
  MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
  a.hq.resize(size_t(nt) * n_in);
  a.hs.resize(size_t(nt) * (n_in / 32) * 2);
  a.q->get(a.hq.data());
  a.s->get(a.hs.data());
  return a;
}

// y_ref[t][o] = sum_i deq(W)[o][i] * q[t][i] * d[t][i/32] in double; tol = 1e-4 * |W_o| * |x_t| (row norms).
void ref_gemm(const Mat& m, const Act& a, std::vector<double>& y, std::vector<double>& tol) {
  y.assign(size_t(a.nt) * m.n_out, 0);
  tol.assign(size_t(a.nt) * m.n_out, 0);
  std::vector<double> xd(m.n_in), wn(m.n_out);
  for (int o = 0; o < m.n_out; ++o) {
    double s = 0;
    for (int i = 0; i < m.n_in; ++i) s += double(m.deq[size_t(o) * m.n_in + i]) * m.deq[size_t(o) * m.n_in + i];
    wn[o] = std::sqrt(s);
  }
  for (int t = 0; t < a.nt; ++t) {
    double xn = 0;
    for (int i = 0; i < m.n_in; ++i) {
      xd[i] = double(a.hq[size_t(t) * m.n_in + cuda::q8_pos(i)]) * a.hs[(size_t(t) * (m.n_in / 32) + i / 32) * 2];
      xn += xd[i] * xd[i];
    }
    xn = std::sqrt(xn);
    for (int o = 0; o < m.n_out; ++o) {
      const float* w = m.deq.data() + size_t(o) * m.n_in;
      double s = 0;
      for (int i = 0; i < m.n_in; ++i) s += double(w[i]) * xd[i];
      y[size_t(t) * m.n_out + o] = s;
      tol[size_t(t) * m.n_out + o] = 1e-4 * wn[o] * xn + 1e-6;
    }
  }
}

cuda::GemmMat gm(const Mat& m, Dev& y) {
  cuda::GemmMat g;
  g.d_w = m.dev->p;
  g.type = m.type;
  g.n_out = m.n_out;
  g.d_y = y.as<float>();
  g.ldy = m.n_out;
  return g;
}

std::vector<float> run_gemm(const Mat& m, const Act& a, cuda::GemmMode mode = cuda::GemmMode::Store,
                            const std::vector<float>* y0 = nullptr) {
  Dev dy(sizeof(float) * size_t(a.nt) * m.n_out);
  if (y0) dy.put(y0->data()); else dy.poison();
  cuda::GemmQ8Args g;
  g.m[0] = gm(m, dy);
  g.n_in = m.n_in;
  g.d_xq = a.q->as<int8_t>();
  g.d_xs = a.s->as<float>();
  g.nt = a.nt;
  g.mode = mode;
  cuda::gemm_q8(g, nullptr);
  MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> y(size_t(a.nt) * m.n_out);
  dy.get(y.data());
  return y;
}

void expect_close(const std::vector<float>& y, const std::vector<double>& ref, const std::vector<double>& tol,
                  std::string_view what, int nt, int n_in) {
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_TRUE(std::isfinite(y[i])) << what << " nt=" << nt << " n_in=" << n_in << " i=" << i;
    ASSERT_NEAR(y[i], ref[i], tol[i]) << what << " nt=" << nt << " n_in=" << n_in << " i=" << i;
  }
}

}  // namespace

TEST(CudaGemm, QuantizeMatchesHost) {
  REQUIRE_GPU();
  for (int n_in : {256, 2304, 5632}) {
    for (int nt : {1, 33, 77}) {
      for (bool with_norm : {false, true}) {
        auto x = randn(size_t(nt) * n_in, 2.f);
        auto norm = randn(n_in);
        auto dn = upload(norm);
        const float eps = 1e-5f;
        Act a = quantize(x, nt, n_in, with_norm ? dn.get() : nullptr, eps);
        for (int t = 0; t < nt; ++t) {
          const float* xr = x.data() + size_t(t) * n_in;
          double inv = 1;
          if (with_norm) {
            double ss = 0;
            for (int i = 0; i < n_in; ++i) ss += double(xr[i]) * xr[i];
            inv = 1.0 / std::sqrt(ss / n_in + eps);
          }
          for (int j = 0; j < n_in / 32; ++j) {
            double v[32], amax = 0;
            for (int i = 0; i < 32; ++i) {
              v[i] = double(xr[32 * j + i]) * inv * (with_norm ? norm[32 * j + i] : 1.0);
              amax = std::max(amax, std::fabs(v[i]));
            }
            const double d = amax / 127;
            const float gd = a.hs[(size_t(t) * (n_in / 32) + j) * 2], gds = a.hs[(size_t(t) * (n_in / 32) + j) * 2 + 1];
            ASSERT_NEAR(gd, d, 2e-6 * d + 1e-30) << "n_in=" << n_in << " nt=" << nt << " t=" << t << " j=" << j;
            long sum = 0;
            for (int i = 0; i < 32; ++i) {
              const int q = a.hq[size_t(t) * n_in + cuda::q8_pos(32 * j + i)];
              sum += q;
              const double want = d > 0 ? v[i] / d : 0.0;
              ASSERT_LE(std::fabs(q - want), 0.5 + 1e-3) << "t=" << t << " j=" << j << " i=" << i;
            }
            ASSERT_NEAR(gds, double(gd) * double(sum), 1e-6 * std::fabs(double(gd) * sum) + 1e-30);
          }
        }
      }
    }
  }
}

TEST(CudaGemm, RejectsBadShapes) {
  REQUIRE_GPU();
  Dev x(sizeof(float) * 4 * 160), q(4 * 160), sc(sizeof(float) * 4 * 10);
  // The int8 values are permuted per 64 elements: a row of 5 blocks of 32 would spill into the next row.
  EXPECT_THROW(cuda::quantize_q8(x.as<float>(), 160, 4, 160, nullptr, 0.f, q.as<int8_t>(), sc.as<float>(), nullptr),
               Error);
  Mat m = make_mat(GgmlType::Q4_K, 256, 8);
  Dev y(sizeof(float) * 4 * 8);
  cuda::GemmQ8Args g;
  g.m[0] = gm(m, y);
  g.n_in = 160;
  g.d_xq = q.as<int8_t>();
  g.d_xs = sc.as<float>();
  g.nt = 4;
  EXPECT_THROW(cuda::gemm_q8(g, nullptr), Error);  // n_in not a multiple of 256
  g.n_in = 256;
  g.m[0].type = GgmlType::Q8_0;
  EXPECT_THROW(cuda::gemm_q8(g, nullptr), Error);  // unsupported weight type
}

TEST(CudaGemm, MatchesReference) {
  REQUIRE_GPU();
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    for (int k : {1, 8, 22}) {
      const int n_in = 256 * k, n_out = k == 22 ? 45 : 75;
      Mat m = make_mat(t, n_in, n_out);
      for (int nt : {1, 33, 77, 130, 512}) {
        auto x = randn(size_t(nt) * n_in);
        Act a = quantize(x, nt, n_in, nullptr, 0.f);
        auto y = run_gemm(m, a);
        std::vector<double> ref, tol;
        ref_gemm(m, a, ref, tol);
        expect_close(y, ref, tol, type_name(t), nt, n_in);
      }
    }
  }
}

TEST(CudaGemm, AddSwigluAndSeveralMatrices) {
  REQUIRE_GPU();
  const int n_in = 768;
  const int nt = 70;
  auto x = randn(size_t(nt) * n_in);
  auto norm = randn(n_in);
  auto dn = upload(norm);
  Act a = quantize(x, nt, n_in, dn.get(), 1e-6f);
  // Add: y = y0 + W x.
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    Mat m = make_mat(t, n_in, 131);
    auto y0 = randn(size_t(nt) * m.n_out);
    auto y = run_gemm(m, a, cuda::GemmMode::Add, &y0);
    std::vector<double> ref, tol;
    ref_gemm(m, a, ref, tol);
    for (size_t i = 0; i < ref.size(); ++i) {
      ref[i] += y0[i];
      tol[i] += 1e-6 * std::fabs(y0[i]);
    }
    expect_close(y, ref, tol, "add", nt, n_in);
  }
  // SwiGLU: gate and up of the same or of different types.
  for (auto [tg, tu] : {std::pair{GgmlType::Q4_K, GgmlType::Q4_K}, std::pair{GgmlType::Q4_K, GgmlType::Q6_K},
                        std::pair{GgmlType::Q6_K, GgmlType::Q4_K}}) {
    const int n_out = 83;
    Mat mg = make_mat(tg, n_in, n_out), mu = make_mat(tu, n_in, n_out);
    Dev dy(sizeof(float) * size_t(nt) * n_out);
    dy.poison();
    cuda::GemmQ8Args g;
    g.m[0] = gm(mg, dy);
    g.m[1] = gm(mu, dy);
    g.m[1].d_y = nullptr;
    g.n_mats = 2;
    g.n_in = n_in;
    g.d_xq = a.q->as<int8_t>();
    g.d_xs = a.s->as<float>();
    g.nt = nt;
    g.mode = cuda::GemmMode::SwiGLU;
    cuda::gemm_q8(g, nullptr);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> y(size_t(nt) * n_out);
    dy.get(y.data());
    std::vector<double> rg, tg_, ru, tu_;
    ref_gemm(mg, a, rg, tg_);
    ref_gemm(mu, a, ru, tu_);
    for (size_t i = 0; i < y.size(); ++i) {
      const double s = rg[i] / (1 + std::exp(-rg[i]));
      const double want = s * ru[i];
      // d(silu(g) u) = silu'(g) u dg + silu(g) du, silu' <= 1.1
      const double tol = 1.1 * std::fabs(ru[i]) * tg_[i] + std::fabs(s) * tu_[i] + 1e-5 * std::fabs(want) + 1e-6;
      ASSERT_TRUE(std::isfinite(y[i])) << i;
      ASSERT_NEAR(y[i], want, tol) << type_name(tg) << "/" << type_name(tu) << " i=" << i;
    }
  }
  // SwiGLUQ8: the int8 output equals quantize_q8 applied to the f32 SwiGLU output (same arithmetic).
  for (GgmlType tu : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    const int n_out = 192;
    Mat mg = make_mat(GgmlType::Q4_K, n_in, n_out), mu = make_mat(tu, n_in, n_out);
    Dev dy(sizeof(float) * size_t(nt) * n_out), dq(size_t(nt) * n_out), ds(sizeof(float) * size_t(nt) * n_out / 16);
    dq.poison();
    ds.poison();
    cuda::GemmQ8Args g;
    g.m[0] = gm(mg, dy);
    g.m[1] = gm(mu, dy);
    g.n_mats = 2;
    g.n_in = n_in;
    g.d_xq = a.q->as<int8_t>();
    g.d_xs = a.s->as<float>();
    g.nt = nt;
    g.mode = cuda::GemmMode::SwiGLU;
    cuda::gemm_q8(g, nullptr);
    g.mode = cuda::GemmMode::SwiGLUQ8;
    g.d_q_out = dq.as<int8_t>();
    g.d_s_out = ds.as<float>();
    cuda::gemm_q8(g, nullptr);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> y(size_t(nt) * n_out);
    dy.get(y.data());
    Act want = quantize(y, nt, n_out, nullptr, 0.f);
    std::vector<int8_t> q(size_t(nt) * n_out);
    std::vector<float> sc(size_t(nt) * n_out / 16);
    dq.get(q.data());
    ds.get(sc.data());
    int differ = 0;
    for (size_t i = 0; i < q.size(); ++i) {
      ASSERT_LE(std::abs(int(q[i]) - int(want.hq[i])), 1) << type_name(tu) << " i=" << i;
      differ += q[i] != want.hq[i];
    }
    for (size_t i = 0; i < sc.size(); ++i)
      ASSERT_NEAR(sc[i], want.hs[i], 1e-6 * std::fabs(want.hs[i]) + 1e-30) << type_name(tu) << " i=" << i;
    std::printf("SwiGLUQ8 (up %s): %d of %zu int8 values differ from quantize_q8 of the f32 output\n",
                std::string(type_name(tu)).c_str(), differ, q.size());
  }
  // Three matrices of different sizes and types in one launch, each into its own output.
  {
    Mat m0 = make_mat(GgmlType::Q4_K, n_in, 200), m1 = make_mat(GgmlType::Q4_K, n_in, 33),
        m2 = make_mat(GgmlType::Q6_K, n_in, 65);
    Dev y0(sizeof(float) * nt * 200), y1(sizeof(float) * nt * 33), y2(sizeof(float) * nt * 65);
    y0.poison();
    y1.poison();
    y2.poison();
    cuda::GemmQ8Args g;
    g.m[0] = gm(m0, y0);
    g.m[1] = gm(m1, y1);
    g.m[2] = gm(m2, y2);
    g.n_mats = 3;
    g.n_in = n_in;
    g.d_xq = a.q->as<int8_t>();
    g.d_xs = a.s->as<float>();
    g.nt = nt;
    cuda::gemm_q8(g, nullptr);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    const Mat* ms[3] = {&m0, &m1, &m2};
    const Dev* ys[3] = {&y0, &y1, &y2};
    for (int i = 0; i < 3; ++i) {
      std::vector<float> y(size_t(nt) * ms[i]->n_out);
      ys[i]->get(y.data());
      std::vector<double> ref, tol;
      ref_gemm(*ms[i], a, ref, tol);
      expect_close(y, ref, tol, "multi", nt, n_in);
    }
  }
}

TEST(CudaGemm, TokenResultDoesNotDependOnBatch) {
  REQUIRE_GPU();
  // n_out large enough that the big batch uses 64-token tiles and the small ones 32-token tiles.
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    const int n_in = 512, n_out = 4000, big = 512;
    Mat m = make_mat(t, n_in, n_out);
    auto norm = randn(n_in);
    auto dn = upload(norm);
    auto x = randn(size_t(big) * n_in);
    Act a = quantize(x, big, n_in, dn.get(), 1e-5f);
    auto y = run_gemm(m, a);
    for (auto [off, nt] : {std::pair{0, 1}, std::pair{5, 33}, std::pair{100, 77}, std::pair{301, 130},
                           std::pair{511, 1}}) {
      std::vector<float> xs(x.begin() + size_t(off) * n_in, x.begin() + size_t(off + nt) * n_in);
      Act as = quantize(xs, nt, n_in, dn.get(), 1e-5f);
      ASSERT_EQ(0, std::memcmp(as.hq.data(), a.hq.data() + size_t(off) * n_in, size_t(nt) * n_in));
      auto ys = run_gemm(m, as);
      ASSERT_EQ(0, std::memcmp(ys.data(), y.data() + size_t(off) * n_out, sizeof(float) * size_t(nt) * n_out))
          << type_name(t) << " off=" << off << " nt=" << nt;
    }
  }
}

namespace {

// Random bytes with sane f16 scales, in the device layout; `copies` copies so timed runs are not L2 hits.
std::vector<std::unique_ptr<Dev>> random_weights(GgmlType t, int n_in, int n_out, int copies, std::mt19937& g) {
  const size_t rb = row_bytes(t, n_in), bb = traits(t).type_size;
  std::vector<uint8_t> raw(rb * n_out);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : raw) b = uint8_t(byte(g));
  for (size_t off = 0; off < raw.size(); off += bb) {
    const uint16_t h = 0x1800;
    if (t == GgmlType::Q4_K) { std::memcpy(raw.data() + off, &h, 2); std::memcpy(raw.data() + off + 2, &h, 2); }
    if (t == GgmlType::Q6_K) std::memcpy(raw.data() + off + 208, &h, 2);
  }
  std::vector<uint8_t> packed(cuda::dev_row_bytes(t, n_in) * n_out);
  cuda::repack_rows(t, raw.data(), n_in, n_out, packed.data());
  std::vector<std::unique_ptr<Dev>> out;
  for (int c = 0; c < copies; ++c) out.push_back(upload(packed));
  return out;
}

template <class F>
double time_us(F&& f, int reps) {
  return median_us(f, reps, 3);
}

}  // namespace

TEST(CudaGemm, PerfTinyLlamaShapes) {
  REQUIRE_GPU();
  std::mt19937 g(4321);
  const int E = 2048, KV = 256, F = 5632, NV = 32000, U = 512;
  struct Part {
    GgmlType type;
    int n_out;
  };
  struct Shape {
    const char* name;
    int n_in;
    std::vector<Part> parts;
    cuda::GemmMode mode;
    bool norm;
  };
  const std::vector<Shape> shapes = {
      {"qkv 2048->2560 (Q4_K,Q4_K,Q6_K)", E, {{GgmlType::Q4_K, E}, {GgmlType::Q4_K, KV}, {GgmlType::Q6_K, KV}},
       cuda::GemmMode::Store, true},
      {"attn_output 2048->2048 Q4_K +=", E, {{GgmlType::Q4_K, E}}, cuda::GemmMode::Add, false},
      {"gate+up 2048->2x5632 Q4_K swiglu", E, {{GgmlType::Q4_K, F}, {GgmlType::Q4_K, F}}, cuda::GemmMode::SwiGLU,
       true},
      {"down 5632->2048 Q6_K +=", F, {{GgmlType::Q6_K, E}}, cuda::GemmMode::Add, false},
      {"down 5632->2048 Q4_K +=", F, {{GgmlType::Q4_K, E}}, cuda::GemmMode::Add, false},
      {"output 2048->32000 Q6_K", E, {{GgmlType::Q6_K, NV}}, cuda::GemmMode::Store, true},
  };
  cublasHandle_t blas = nullptr;
  ASSERT_EQ(CUBLAS_STATUS_SUCCESS, cublasCreate(&blas));
  auto x = randn(size_t(U) * F);
  auto dx = upload(x);
  auto norm = randn(F);
  auto dn = upload(norm);
  Dev xq(size_t(U) * F), xs(sizeof(float) * size_t(U) * (F / 32) * 2), x16(sizeof(__half) * size_t(U) * F);
  Dev y(sizeof(float) * size_t(U) * NV), yb(sizeof(float) * size_t(U) * NV);
  Dev w16(sizeof(__half) * size_t(NV) * E);
  for (int nt : {128, 512}) {
    double sum_new = 0, sum_old = 0;
    for (int n_in : {E, F}) {
      const double us = time_us([&](int) {
        cuda::quantize_q8(dx->as<float>(), n_in, nt, n_in, n_in == E ? dn->as<float>() : nullptr, 1e-5f,
                          xq.as<int8_t>(), xs.as<float>(), nullptr);
      }, 20);
      std::printf("[perf] nt=%3d quantize_q8 n_in=%d%s: %.1f us\n", nt, n_in, n_in == E ? " (RMSNorm)" : "", us);
    }
    for (const Shape& sh : shapes) {
      size_t bytes = 0;
      double flop = 0;
      for (const Part& p : sh.parts) {
        bytes += cuda::dev_row_bytes(p.type, sh.n_in) * size_t(p.n_out);
        flop += 2.0 * sh.n_in * p.n_out * nt;
      }
      const int copies = int(std::clamp<size_t>((size_t(160) << 20) / bytes, 1, 8));
      std::vector<std::vector<std::unique_ptr<Dev>>> w;
      for (const Part& p : sh.parts) w.push_back(random_weights(p.type, sh.n_in, p.n_out, copies, g));
      const int reps = 20;
      int bn = 0;
      auto run_new = [&](int i) {
        const int c = i % copies;
        cuda::quantize_q8(dx->as<float>(), sh.n_in, nt, sh.n_in, sh.norm ? dn->as<float>() : nullptr, 1e-5f,
                          xq.as<int8_t>(), xs.as<float>(), nullptr);
        cuda::GemmQ8Args a;
        size_t yoff = 0;
        for (size_t k = 0; k < sh.parts.size(); ++k) {
          a.m[k].d_w = w[k][c]->p;
          a.m[k].type = sh.parts[k].type;
          a.m[k].n_out = sh.parts[k].n_out;
          a.m[k].d_y = y.as<float>() + yoff;
          a.m[k].ldy = sh.parts[k].n_out;
          yoff += size_t(nt) * sh.parts[k].n_out;
        }
        a.n_mats = int(sh.parts.size());
        a.n_in = sh.n_in;
        a.d_xq = xq.as<int8_t>();
        a.d_xs = xs.as<float>();
        a.nt = nt;
        a.mode = sh.mode;
        a.bn = bn;
        cuda::gemm_q8(a, nullptr);
      };
      auto run_old = [&](int i) {
        const int c = i % copies;
        if (sh.norm) cuda::rmsnorm_f16(dx->as<float>(), sh.n_in, dn->as<float>(), sh.n_in, nt, 1e-5f, x16.p, nullptr);
        else cuda::f32_to_f16(dx->as<float>(), int64_t(nt) * sh.n_in, x16.p, nullptr);
        size_t yoff = 0;
        for (size_t k = 0; k < sh.parts.size(); ++k) {
          const int n_out = sh.parts[k].n_out;
          cuda::dequant_f16(sh.parts[k].type, w[k][c]->p, sh.n_in, n_out, w16.p, nullptr);
          const float alpha = 1.f, beta = sh.mode == cuda::GemmMode::Add ? 1.f : 0.f;
          cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n_out, nt, sh.n_in, &alpha, w16.p, CUDA_R_16F, sh.n_in, x16.p,
                       CUDA_R_16F, sh.n_in, &beta, yb.as<float>() + yoff, CUDA_R_32F, n_out, CUBLAS_COMPUTE_32F,
                       CUBLAS_GEMM_DEFAULT);
          yoff += size_t(nt) * n_out;
        }
        if (sh.mode == cuda::GemmMode::SwiGLU)
          cuda::swiglu_f16(yb.as<float>(), yb.as<float>() + size_t(nt) * F, int64_t(nt) * F, x16.p, nullptr);
      };
      const double us_new = time_us(run_new, reps), us_old = time_us(run_old, reps);
      bn = 32;
      const double us32 = time_us(run_new, reps);
      bn = 64;
      const double us64 = time_us(run_new, reps);
      MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
      const int mult = std::string(sh.name).rfind("down 5632->2048 Q4_K", 0) == 0 ? 0 : 1;  // one down per layer
      const int per_model = std::string(sh.name).rfind("output", 0) == 0 ? 1 : 22;
      sum_new += mult * per_model * us_new;
      sum_old += mult * per_model * us_old;
      std::printf("[perf] nt=%3d %-34s int8 %7.1f us %6.1f TFLOP/s %7.1f GB/s (bn32 %7.1f, bn64 %7.1f) | "
                  "dequant+cuBLAS %7.1f us %6.1f TFLOP/s\n",
                  nt, sh.name, us_new, flop / us_new * 1e-6, bytes / us_new * 1e-3, us32, us64, us_old,
                  flop / us_old * 1e-6);
    }
    std::printf("[perf] nt=%3d matrices of the model (22 layers, down as Q6_K, + output): int8 %.2f ms, "
                "dequant+cuBLAS %.2f ms\n", nt, sum_new * 1e-3, sum_old * 1e-3);
  }
  cublasDestroy(blas);
}

#else
TEST(CudaGemm, NotBuilt) { GTEST_SKIP() << "built without CUDA (-DMINNOW_CUDA=ON)"; }
#endif
