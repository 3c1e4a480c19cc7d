// The CUDA kernels of the layer features (model/layer_spec.h) against plain double-precision host references, on
// random inputs of awkward sizes with outputs poisoned (NaN) first: the unfused QKV epilogue (biases, per-head
// Q/K RMSNorm, adjacent / NeoX RoPE on n_rot < head_dim dims, frequency factors, angle table or computed),
// sliding-window attention, the residual add with a bias and a post-norm, the prefill GLUs, the embedding
// scale and the logit soft-cap. Skips when there is no GPU; a single skipped test in builds without CUDA.
#include <gtest/gtest.h>

#ifdef MINNOW_HAVE_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"
#include "cuda_test_util.h"
#include "quant/quant_ref.h"

using namespace minnow;
using namespace minnow::cuda_test;

namespace {

// RoPE of one head (double): pairs (2i, 2i+1) or (i, i + n_rot/2) for i < n_rot/2, angle
// pos * base^(-2i/n_rot) / factor[i].
void ref_rope(double* x, int n_rot, bool neox, int pos, double base, const float* factors) {
  for (int i = 0; i < n_rot / 2; ++i) {
    double th = double(pos) * std::pow(base, -2.0 * i / n_rot);
    if (factors) th /= double(factors[i]);
    const int i0 = neox ? i : 2 * i, i1 = neox ? i + n_rot / 2 : 2 * i + 1;
    const double a = x[i0], b = x[i1];
    x[i0] = a * std::cos(th) - b * std::sin(th);
    x[i1] = a * std::sin(th) + b * std::cos(th);
  }
}

// bias, optional per-head RMSNorm, RoPE of one head of a token (double).
std::vector<double> ref_head(const float* x, const float* bias, const float* norm, int D, int n_rot, bool neox,
                             int pos, double base, const float* factors, float eps) {
  std::vector<double> v(size_t(D), 0.0);
  for (int d = 0; d < D; ++d) v[size_t(d)] = double(x[d]) + (bias ? double(bias[d]) : 0.0);
  if (norm) {
    double ss = 0;
    for (double e : v) ss += e * e;
    const double inv = 1.0 / std::sqrt(ss / D + double(eps));
    for (int d = 0; d < D; ++d) v[size_t(d)] = v[size_t(d)] * inv * double(norm[d]);
  }
  ref_rope(v.data(), n_rot, neox, pos, base, factors);
  return v;
}

TEST(CudaFeatures, QkvPostMatchesReference) {
  REQUIRE_GPU();
  struct Case { int H, HKV, D, n_rot; bool neox, bias, norm, factors, table; };
  const Case cases[] = {
      {3, 1, 64, 64, true, true, false, false, true},    // qwen2-like: NeoX + biases
      {2, 2, 64, 64, true, false, true, false, false},   // qwen3-like: NeoX + Q/K norms, computed angles
      {4, 2, 64, 64, false, false, false, true, true},   // llama3-like: factors (table)
      {4, 2, 64, 64, false, false, false, true, false},  // factors (computed)
      {5, 1, 256, 256, true, false, true, false, true},  // gemma-like: head_dim 256, norms
      {6, 3, 96, 32, true, true, true, true, false},     // partial rotary NeoX, everything on
      {3, 3, 32, 24, false, true, true, false, true},    // partial rotary adjacent
  };
  for (const Case& c : cases) {
    const int n = 7, n_ctx = 333, n_seq = 2;
    const double base = 12345.0;
    const float eps = 1e-6f;
    const int QD = c.H * c.D, KD = c.HKV * c.D;
    const int ldq = QD + KD + KD + 5, ldk = KD + 3, ldv = KD + 1;  // strided rows
    auto q = randn(size_t(n) * ldq), k = randn(size_t(n) * ldk), v = randn(size_t(n) * ldv);
    auto bq = randn(size_t(QD)), bk = randn(size_t(KD)), bv = randn(size_t(KD));
    auto qn = randn(size_t(c.D)), kn = randn(size_t(c.D));
    std::vector<float> fac(size_t(c.n_rot / 2));
    for (size_t i = 0; i < fac.size(); ++i) fac[i] = 1.f + float(i % 7) * 1.7f;
    std::vector<int32_t> pos = {0, 1, 332, 17, 200, 99, 5}, seq = {0, 1, 1, 0, 0, 1, 1};
    std::vector<float> table(size_t(n_ctx) * (c.n_rot / 2) * 2);
    cuda::rope_table(n_ctx, c.n_rot, base, 1.0, table.data(), c.factors ? fac.data() : nullptr);
    auto dq = upload(q), dk = upload(k), dv = upload(v), dbq = upload(bq), dbk = upload(bk), dbv = upload(bv);
    auto dqn = upload(qn), dkn = upload(kn), dfac = upload(fac), dtab = upload(table), dp = upload(pos),
         ds = upload(seq);
    const size_t cache = size_t(n_seq) * n_ctx * KD;
    Dev kc(cache * 2), vc(cache * 2);
    kc.poison();
    vc.poison();
    cuda::QkvPostArgs a;
    a.d_q = dq->as<float>();
    a.d_k = dk->as<float>();
    a.d_v = dv->as<float>();
    a.ldq = ldq;
    a.ldk = ldk;
    a.ldv = ldv;
    a.d_pos = dp->as<int32_t>();
    a.d_seq = ds->as<int32_t>();
    a.n = n;
    a.n_head = c.H;
    a.n_head_kv = c.HKV;
    a.head_dim = c.D;
    a.n_rot = c.n_rot;
    if (c.bias) {
      a.d_bq = dbq->as<float>();
      a.d_bk = dbk->as<float>();
      a.d_bv = dbv->as<float>();
    }
    if (c.norm) {
      a.d_q_norm = dqn->as<float>();
      a.d_k_norm = dkn->as<float>();
    }
    a.eps = eps;
    a.neox = c.neox;
    a.d_rope = c.table ? dtab->as<float>() : nullptr;
    a.freq_base = float(base);
    a.d_factors = c.factors ? dfac->as<float>() : nullptr;
    a.d_kcache = kc.p;
    a.d_vcache = vc.p;
    a.n_ctx = n_ctx;
    cuda::qkv_post(a, nullptr);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> gq(q.size());
    dq->get(gq.data());
    std::vector<uint16_t> hk(cache), hv(cache);
    kc.get(hk.data());
    vc.get(hv.data());
    const float* F = c.factors ? fac.data() : nullptr;
    int moved = 0;
    for (int t = 0; t < n; ++t) {
      for (int h = 0; h < c.H; ++h) {
        const float* src = q.data() + size_t(t) * ldq + size_t(h) * c.D;
        auto want = ref_head(src, c.bias ? bq.data() + size_t(h) * c.D : nullptr, c.norm ? qn.data() : nullptr, c.D,
                             c.n_rot, c.neox, pos[size_t(t)], base, F, eps);
        for (int d = 0; d < c.D; ++d) {
          const float g = gq[size_t(t) * ldq + size_t(h) * c.D + size_t(d)];
          ASSERT_NEAR(g, want[size_t(d)], 2e-5 + 2e-5 * std::fabs(want[size_t(d)]))
              << "case D=" << c.D << " n_rot=" << c.n_rot << " neox=" << c.neox << " t=" << t << " h=" << h << " d=" << d;
          moved += std::fabs(g - src[d]) > 1e-3f;
        }
      }
      for (int i = QD; i < ldq; ++i) ASSERT_EQ(gq[size_t(t) * ldq + size_t(i)], q[size_t(t) * ldq + size_t(i)]) << "past q";
      const size_t row = (size_t(seq[size_t(t)]) * n_ctx + size_t(pos[size_t(t)])) * KD;
      for (int h = 0; h < c.HKV; ++h) {
        const float* src = k.data() + size_t(t) * ldk + size_t(h) * c.D;
        auto want = ref_head(src, c.bias ? bk.data() + size_t(h) * c.D : nullptr, c.norm ? kn.data() : nullptr, c.D,
                             c.n_rot, c.neox, pos[size_t(t)], base, F, eps);
        for (int d = 0; d < c.D; ++d)
          ASSERT_NEAR(fp16_to_fp32(hk[row + size_t(h) * c.D + size_t(d)]), want[size_t(d)],
                      1e-3 * std::fabs(want[size_t(d)]) + 1e-4)
              << "k t=" << t << " h=" << h << " d=" << d;
      }
      for (int i = 0; i < KD; ++i) {
        const float want = v[size_t(t) * ldv + size_t(i)] + (c.bias ? bv[size_t(i)] : 0.f);
        ASSERT_EQ(hv[row + size_t(i)], fp32_to_fp16(want)) << "v t=" << t << " i=" << i;
      }
    }
    EXPECT_GT(moved, n * QD / 4);  // the epilogue did something
  }
  cuda::QkvPostArgs bad;
  bad.n = 1;
  bad.head_dim = 64;
  bad.n_rot = 66;
  bad.n_head_kv = 1;
  EXPECT_THROW(cuda::qkv_post(bad, nullptr), Error);
}

TEST(CudaFeatures, SlidingWindowAttentionMatchesReference) {
  REQUIRE_GPU();
  struct Case { int H, HKV, D, n_ctx, window; };
  // windows inside one chunk, across chunk boundaries, masking whole chunks, and wider than the context
  for (Case c : {Case{4, 2, 64, 700, 17}, Case{2, 1, 256, 400, 129}, Case{6, 3, 32, 1300, 300}, Case{3, 1, 128, 300, 1},
                 Case{4, 4, 64, 260, 5000}}) {
    const int n_seq = 2;
    std::vector<int32_t> pos = {0, 5, c.n_ctx - 1, 127, 128, c.n_ctx / 2, 16, 17};
    std::vector<int32_t> seq = {0, 1, 0, 1, 1, 0, 1, 0};
    const int n = int(pos.size());
    const size_t cache_elems = size_t(n_seq) * c.n_ctx * c.HKV * c.D;
    std::vector<uint16_t> kc(cache_elems), vc(cache_elems);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (auto& h : kc) h = fp32_to_fp16(nd(rng()));
    for (auto& h : vc) h = fp32_to_fp16(nd(rng()));
    auto q = randn(size_t(n) * c.H * c.D);
    auto dq = upload(q), dk = upload(kc), dv = upload(vc), dp = upload(pos), ds = upload(seq);
    Dev scratch(sizeof(float) * cuda::attn_scratch_floats(n, c.H, c.D, c.n_ctx));
    scratch.poison();
    Dev out(sizeof(float) * size_t(n) * c.H * c.D);
    out.poison();
    const size_t nc = cuda::attn_counter_ints(n, c.H, c.HKV);
    Dev counters(sizeof(int) * nc);
    MINNOW_CUDA_CHECK(cudaMemset(counters.p, 0, counters.bytes));
    const float scale = 0.37f;
    cuda::AttnArgs a;
    a.d_q = dq->as<float>();
    a.ldq = c.H * c.D;
    a.d_kcache = dk->p;
    a.d_vcache = dv->p;
    a.d_pos = dp->as<int32_t>();
    a.d_seq = ds->as<int32_t>();
    a.n = n;
    a.n_head = c.H;
    a.n_head_kv = c.HKV;
    a.head_dim = c.D;
    a.n_ctx = c.n_ctx;
    a.scale = scale;
    a.window = c.window;
    a.d_scratch = scratch.as<float>();
    a.d_counters = counters.as<int>();
    a.d_out = out.as<float>();
    a.ldo = c.H * c.D;
    cuda::attention(a, nullptr);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<int> left(nc);
    counters.get(left.data());
    for (int v : left) ASSERT_EQ(v, 0) << "merge counters must be left at zero";
    std::vector<float> got(size_t(n) * c.H * c.D);
    out.get(got.data());
    const int G = c.H / c.HKV;
    for (int t = 0; t < n; ++t) {
      const int p_lo = std::max(0, pos[size_t(t)] - c.window + 1);  // attends to p with pos - p < window
      for (int h = 0; h < c.H; ++h) {
        const int kvh = h / G;
        std::vector<double> s;
        double mx = -1e300;
        for (int p = p_lo; p <= pos[size_t(t)]; ++p) {
          const size_t b = ((size_t(seq[size_t(t)]) * c.n_ctx + size_t(p)) * c.HKV + size_t(kvh)) * c.D;
          double d = 0;
          for (int i = 0; i < c.D; ++i) d += double(q[(size_t(t) * c.H + size_t(h)) * c.D + size_t(i)]) * fp16_to_fp32(kc[b + size_t(i)]);
          s.push_back(d * scale);
          mx = std::max(mx, s.back());
        }
        double den = 0;
        for (auto& e : s) den += (e = std::exp(e - mx));
        for (int i = 0; i < c.D; ++i) {
          double num = 0;
          for (int p = p_lo; p <= pos[size_t(t)]; ++p)
            num += s[size_t(p - p_lo)] *
                   fp16_to_fp32(vc[((size_t(seq[size_t(t)]) * c.n_ctx + size_t(p)) * c.HKV + size_t(kvh)) * c.D + size_t(i)]);
          const double want = num / den;
          const float g = got[(size_t(t) * c.H + size_t(h)) * c.D + size_t(i)];
          ASSERT_TRUE(std::isfinite(g)) << "window " << c.window << " t=" << t;
          ASSERT_NEAR(g, want, 2e-4 + 1e-3 * std::fabs(want))
              << "window=" << c.window << " D=" << c.D << " t=" << t << " h=" << h << " i=" << i << " pos=" << pos[size_t(t)];
        }
      }
    }
  }
}

TEST(CudaFeatures, ResidualPostMatchesReference) {
  REQUIRE_GPU();
  const int n = 328, rows = 5, ldx = 333, ldy = 341;
  const float eps = 1e-6f;
  for (int variant = 0; variant < 4; ++variant) {
    const bool use_bias = variant & 1, use_norm = variant & 2;
    auto x = randn(size_t(rows) * ldx), y = randn(size_t(rows) * ldy, 3.f), bias = randn(size_t(n)), w = randn(size_t(n));
    auto dx = upload(x), dy = upload(y), db = upload(bias), dw = upload(w);
    cuda::residual_post(dx->as<float>(), ldx, dy->as<float>(), ldy, use_bias ? db->as<float>() : nullptr,
                        use_norm ? dw->as<float>() : nullptr, n, rows, eps, nullptr);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> got(x.size());
    dx->get(got.data());
    for (int r = 0; r < rows; ++r) {
      std::vector<double> v(static_cast<size_t>(n));
      double ss = 0;
      for (int i = 0; i < n; ++i) {
        v[size_t(i)] = double(y[size_t(r) * ldy + size_t(i)]) + (use_bias ? double(bias[size_t(i)]) : 0.0);
        ss += v[size_t(i)] * v[size_t(i)];
      }
      const double inv = use_norm ? 1.0 / std::sqrt(ss / n + double(eps)) : 1.0;
      for (int i = 0; i < ldx; ++i) {
        const size_t o = size_t(r) * ldx + size_t(i);
        if (i >= n) {
          ASSERT_EQ(got[o], x[o]) << "column past n written";
          continue;
        }
        const double want = double(x[o]) + (use_norm ? v[size_t(i)] * inv * double(w[size_t(i)]) : v[size_t(i)]);
        ASSERT_NEAR(got[o], want, 1e-5 * (1 + std::fabs(want))) << "variant " << variant << " r=" << r << " i=" << i;
      }
    }
  }
}

double ref_act(double x, cuda::Act act) {
  if (act == cuda::Act::GeluTanh) return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  return x / (1 + std::exp(-x));
}

TEST(CudaFeatures, GluScaleSoftcapMatchReference) {  // (the decode path's GLU is in the mat-vec: test_cuda_kernels)
  REQUIRE_GPU();
  for (cuda::Act act : {cuda::Act::SiLU, cuda::Act::GeluTanh}) {
    // f16 out of [rows][gate | up] rows of stride ld
    const int rows = 3, n_ff = 200, ld = 2 * n_ff + 7;
    auto gu = randn(size_t(rows) * ld, 3.f);
    auto dgu = upload(gu);
    Dev out(size_t(rows) * n_ff * 2);
    out.poison();
    cuda::glu_f16_ld(dgu->as<float>(), ld, n_ff, rows, out.p, act, nullptr);
    std::vector<uint16_t> h(size_t(rows) * n_ff);
    out.get(h.data());
    for (int r = 0; r < rows; ++r)
      for (int i = 0; i < n_ff; ++i) {
        const double want = ref_act(gu[size_t(r) * ld + size_t(i)], act) * gu[size_t(r) * ld + size_t(n_ff + i)];
        ASSERT_NEAR(fp16_to_fp32(h[size_t(r) * n_ff + size_t(i)]), want, 1e-3 * std::fabs(want) + 1e-4) << r << " " << i;
      }
  }
  EXPECT_THROW(cuda::glu_f16_ld(nullptr, 10, 6, 1, nullptr, cuda::Act::GeluTanh, nullptr), Error);
  const int64_t n = 999;
  auto x = randn(size_t(n), 40.f);
  auto dx = upload(x);
  cuda::scale(dx->as<float>(), n, 11.3137f, nullptr);
  std::vector<float> got(static_cast<size_t>(n));
  dx->get(got.data());
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(got[size_t(i)], double(x[size_t(i)]) * 11.3137, 1e-4 * std::fabs(x[size_t(i)] * 11.3137));
  dx->put(x.data());
  cuda::softcap(dx->as<float>(), n, 30.f, nullptr);
  dx->get(got.data());
  for (int64_t i = 0; i < n; ++i) {
    const double want = 30.0 * std::tanh(double(x[size_t(i)]) / 30.0);
    ASSERT_NEAR(got[size_t(i)], want, 1e-5 * 30) << i;
    ASSERT_LT(std::fabs(got[size_t(i)]), 30.0f + 1e-4f);
  }
  EXPECT_THROW(cuda::softcap(dx->as<float>(), n, 0.f, nullptr), Error);
}

TEST(CudaFeatures, RopeTableTakesFactors) {
  const int n_ctx = 9, n_rot = 10;
  std::vector<float> plain(size_t(n_ctx) * n_rot), fac_t(size_t(n_ctx) * n_rot);
  std::vector<float> fac = {1.f, 2.f, 4.f, 8.f, 0.5f};
  cuda::rope_table(n_ctx, n_rot, 500000.0, 1.0, plain.data());
  cuda::rope_table(n_ctx, n_rot, 500000.0, 1.0, fac_t.data(), fac.data());
  for (int p = 0; p < n_ctx; ++p)
    for (int i = 0; i < n_rot / 2; ++i) {
      const double th = p * std::pow(500000.0, -2.0 * i / n_rot) / fac[size_t(i)];
      ASSERT_NEAR(fac_t[(size_t(p) * (n_rot / 2) + size_t(i)) * 2], std::cos(th), 1e-6);
      ASSERT_NEAR(fac_t[(size_t(p) * (n_rot / 2) + size_t(i)) * 2 + 1], std::sin(th), 1e-6);
    }
}

}  // namespace

#else
TEST(CudaFeatures, NotBuilt) { GTEST_SKIP() << "built without CUDA (-DMINNOW_CUDA=ON)"; }
#endif
