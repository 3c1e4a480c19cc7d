// CUDA kernels against plain CPU references (quant_ref.h, double accumulation), on fresh random inputs of
// awkward sizes, with outputs poisoned (NaN) before each run. Skips when there is no GPU; compiles to a single
// skipped test in builds without CUDA.
#include <gtest/gtest.h>

#ifdef MINNOW_HAVE_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "cuda_test_util.h"
#include "quant/quant_ref.h"

using namespace minnow;
using namespace minnow::cuda_test;

namespace {




const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                              GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};

// A random quantized matrix: host ggml bytes, its dequantized values, and the device copy.
struct Mat {
  GgmlType type;
  int n_in, n_out;
  std::vector<uint8_t> raw;  // ggml layout
  std::vector<float> deq;    // [n_out][n_in]
  std::unique_ptr<Dev> dev;
};
Mat make_mat(GgmlType t, int n_in, int n_out) {
  Mat m{t, n_in, n_out, {}, {}, nullptr};
  const size_t rb = row_bytes(t, n_in);
  m.raw.resize(rb * n_out);
  m.deq.resize(size_t(n_in) * n_out);
  for (int r = 0; r < n_out; ++r) {
    auto v = randn(n_in, 0.5f);
    quantize_row_ref(t, v.data(), m.raw.data() + rb * r, n_in);
    dequantize_row_ref(t, m.raw.data() + rb * r, m.deq.data() + size_t(r) * n_in, n_in);
  }
  std::vector<uint8_t> packed(cuda::dev_row_bytes(t, n_in) * n_out);
  cuda::repack_rows(t, m.raw.data(), n_in, n_out, packed.data());
  m.dev = upload(packed);
  return m;
}
int awkward_n_in(GgmlType t, int k) {
  const int be = cuda::dev_block_elems(t);
  if (be == 256) return 256 * (1 + 2 * k);  // 256, 768, 1280
  if (be == 32) return 32 * (3 + 5 * k);    // 96, 256, 416
  return 8 * (5 + 11 * k);                  // 40, 128, 216
}

// Reference: y[b][o] = inv_rms_b * sum_i W[o][i] * norm[i] * x[b][i]. Also returns a tolerance per output:
// float rounding (2e-5 * sum |terms|) plus, for launches whose matrices are all Q4_K/Q6_K (int8 activations,
// cuda_kernels.h), the bound of rounding each normalised activation to a step of amax(its 32-block) / 127.
void ref_matvec(const Mat& m, const std::vector<float>& x, int nb, const float* norm, float eps,
                std::vector<double>& y, std::vector<double>& tol, bool int8_acts = false) {
  y.assign(size_t(nb) * m.n_out, 0);
  tol.assign(size_t(nb) * m.n_out, 0);
  const bool q8 = int8_acts || m.type == GgmlType::Q4_K || m.type == GgmlType::Q6_K;
  for (int b = 0; b < nb; ++b) {
    const float* xb = x.data() + size_t(b) * m.n_in;
    double inv = 1;
    if (norm) {
      double ss = 0;
      for (int i = 0; i < m.n_in; ++i) ss += double(xb[i]) * xb[i];
      inv = 1.0 / std::sqrt(ss / m.n_in + eps);
    }
    std::vector<double> xn(m.n_in), step(m.n_in);
    for (int i = 0; i < m.n_in; ++i) xn[i] = double(xb[i]) * (norm ? norm[i] : 1.0) * inv;
    for (int j = 0; j < m.n_in; j += 32) {
      double amax = 0;
      for (int i = j; i < j + 32 && i < m.n_in; ++i) amax = std::max(amax, std::fabs(xn[i]));
      for (int i = j; i < j + 32 && i < m.n_in; ++i) step[i] = q8 ? amax / 127.0 * 0.5 * 1.001 : 0.0;
    }
    for (int o = 0; o < m.n_out; ++o) {
      double s = 0, a = 0, qe = 0;
      for (int i = 0; i < m.n_in; ++i) {
        const double w = m.deq[size_t(o) * m.n_in + i];
        s += w * xn[i];
        a += std::fabs(w * xn[i]);
        qe += std::fabs(w) * step[i];
      }
      y[size_t(b) * m.n_out + o] = s;
      tol[size_t(b) * m.n_out + o] = 2e-5 * a + qe + 1e-6;
    }
  }
}

std::vector<float> run_matvec(const Mat& m, const std::vector<float>& x, int nb, const Dev* norm, float eps,
                              cuda::MvMode mode = cuda::MvMode::Store, const std::vector<float>* y0 = nullptr) {
  auto dx = upload(x);
  Dev dy(sizeof(float) * size_t(nb) * m.n_out);
  if (y0) dy.put(y0->data()); else dy.poison();
  cuda::MatvecArgs a;
  a.m[0].d_w = m.dev->p;
  a.m[0].type = m.type;
  a.m[0].n_out = m.n_out;
  a.m[0].d_y = dy.as<float>();
  a.m[0].ldy = m.n_out;
  a.n_in = m.n_in;
  a.d_x = dx->as<float>();
  a.ldx = m.n_in;
  a.nb = nb;
  a.d_norm = norm ? norm->as<float>() : nullptr;
  a.eps = eps;
  a.mode = mode;
  cuda::matvec(a, nullptr);
  MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> y(size_t(nb) * m.n_out);
  dy.get(y.data());
  return y;
}

}  // namespace

TEST(CudaKernels, MatvecEveryTypeMatchesReference) {
  REQUIRE_GPU();
  for (GgmlType t : kAllTypes) {
    for (int k = 0; k < 2; ++k) {
      const int n_in = awkward_n_in(t, k), n_out = 37 + 16 * k;
      Mat m = make_mat(t, n_in, n_out);
      for (int nb : {1, 3, 11}) {
        for (bool with_norm : {false, true}) {
          auto x = randn(size_t(nb) * n_in);
          auto norm = randn(n_in);
          auto dn = upload(norm);
          auto y = run_matvec(m, x, nb, with_norm ? dn.get() : nullptr, 1e-5f);
          std::vector<double> ref, mag;
          ref_matvec(m, x, nb, with_norm ? norm.data() : nullptr, 1e-5f, ref, mag);
          for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_TRUE(std::isfinite(y[i])) << type_name(t) << " nb=" << nb << " i=" << i;
            ASSERT_NEAR(y[i], ref[i], mag[i])
                << type_name(t) << " n_in=" << n_in << " nb=" << nb << " norm=" << with_norm << " i=" << i;
          }
        }
      }
    }
  }
}

TEST(CudaKernels, MatvecIsBatchInvariant) {
  REQUIRE_GPU();
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::F16}) {
    const int n_in = awkward_n_in(t, 1), n_out = 29;
    Mat m = make_mat(t, n_in, n_out);
    auto norm = randn(n_in);
    auto dn = upload(norm);
    for (int nb : {2, 9, 32}) {
      auto x = randn(size_t(nb) * n_in);
      auto y = run_matvec(m, x, nb, dn.get(), 1e-6f);
      for (int b = 0; b < nb; b += 3) {
        std::vector<float> xb(x.begin() + size_t(b) * n_in, x.begin() + size_t(b + 1) * n_in);
        auto y1 = run_matvec(m, xb, 1, dn.get(), 1e-6f);
        ASSERT_EQ(0, std::memcmp(y1.data(), y.data() + size_t(b) * n_out, sizeof(float) * n_out))
            << type_name(t) << " nb=" << nb << " b=" << b;
      }
    }
  }
}

TEST(CudaKernels, MatvecAddSwigluAndMultiMatrix) {
  REQUIRE_GPU();
  const int n_in = 768, nb = 5;
  Mat g = make_mat(GgmlType::Q4_K, n_in, 45), u = make_mat(GgmlType::Q6_K, n_in, 45);
  Mat g8 = make_mat(GgmlType::Q8_0, n_in, 45), u5 = make_mat(GgmlType::Q5_0, n_in, 45);
  auto x = randn(size_t(nb) * n_in);
  auto norm = randn(n_in);
  auto dn = upload(norm);
  // Add mode: y = y0 + W x
  {
    auto y0 = randn(size_t(nb) * 45);
    auto y = run_matvec(g, x, nb, nullptr, 0, cuda::MvMode::Add, &y0);
    std::vector<double> ref, mag;
    ref_matvec(g, x, nb, nullptr, 0, ref, mag);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], y0[i] + ref[i], mag[i] + 2e-5 * std::fabs(y0[i]));
  }
  // Gated activations: y = act(G x) * (U x), SiLU (the default) and GELU-tanh; on the int8 path (Q4_K, Q6_K) and
  // the f32 path (Q8_0, Q5_0).
  for (int path = 0; path < 2; ++path)
    for (cuda::Act act : {cuda::Act::SiLU, cuda::Act::GeluTanh}) {
      const Mat& G = path == 0 ? g : g8;
      const Mat& U = path == 0 ? u : u5;
      auto dx = upload(x);
      Dev dy(sizeof(float) * nb * 45);
      dy.poison();
      cuda::MatvecArgs a;
      a.m[0] = {G.dev->p, G.type, 45, dy.as<float>(), 45};
      a.m[1] = {U.dev->p, U.type, 45, nullptr, 45};
      a.n_mats = 2;
      a.n_in = n_in;
      a.d_x = dx->as<float>();
      a.ldx = n_in;
      a.nb = nb;
      a.d_norm = dn->as<float>();
      a.eps = 1e-5f;
      a.mode = cuda::MvMode::SwiGLU;
      if (act != cuda::Act::SiLU) a.act = act;  // SiLU: the default, not set
      cuda::matvec(a, nullptr);
      MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
      std::vector<float> y(nb * 45);
      dy.get(y.data());
      std::vector<double> rg, mg, ru, mu;
      ref_matvec(G, x, nb, norm.data(), 1e-5f, rg, mg);
      ref_matvec(U, x, nb, norm.data(), 1e-5f, ru, mu);
      for (size_t i = 0; i < y.size(); ++i) {
        const double v = rg[i];
        const double f = act == cuda::Act::SiLU
                             ? v / (1 + std::exp(-v))
                             : 0.5 * v * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        const double want = f * ru[i];
        const double tol = 1.2 * (mg[i] * (std::fabs(ru[i]) + mu[i]) + mu[i] * (std::fabs(f) + mg[i] + 1)) + 1e-6;
        ASSERT_NEAR(y[i], want, tol) << "path " << path << " act " << int(act) << " " << i;
      }
    }
  // Three matrices of different types sharing one input (Q, K, V).
  {
    Mat a0 = make_mat(GgmlType::Q4_K, n_in, 33), a1 = make_mat(GgmlType::Q8_0, n_in, 7),
        a2 = make_mat(GgmlType::Q6_K, n_in, 12);
    auto dx = upload(x);
    Dev y0(sizeof(float) * nb * 33), y1(sizeof(float) * nb * 7), y2(sizeof(float) * nb * 12);
    y0.poison(); y1.poison(); y2.poison();
    cuda::MatvecArgs a;
    a.m[0] = {a0.dev->p, a0.type, 33, y0.as<float>(), 33};
    a.m[1] = {a1.dev->p, a1.type, 7, y1.as<float>(), 7};
    a.m[2] = {a2.dev->p, a2.type, 12, y2.as<float>(), 12};
    a.n_mats = 3;
    a.n_in = n_in;
    a.d_x = dx->as<float>();
    a.ldx = n_in;
    a.nb = nb;
    a.d_norm = dn->as<float>();
    a.eps = 1e-5f;
    cuda::matvec(a, nullptr);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    const Mat* ms[3] = {&a0, &a1, &a2};
    const Dev* ys[3] = {&y0, &y1, &y2};
    for (int j = 0; j < 3; ++j) {
      std::vector<float> y(size_t(nb) * ms[j]->n_out);
      ys[j]->get(y.data());
      std::vector<double> ref, mag;
      ref_matvec(*ms[j], x, nb, norm.data(), 1e-5f, ref, mag);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], mag[i]) << j << " " << i;
    }
  }
}

TEST(CudaKernels, DequantAndGetRowsMatchReference) {
  REQUIRE_GPU();
  for (GgmlType t : kAllTypes) {
    const int n_in = awkward_n_in(t, 1), n_rows = 13;
    Mat m = make_mat(t, n_in, n_rows);
    Dev out16(sizeof(uint16_t) * n_in * n_rows);
    out16.poison();
    cuda::dequant_f16(t, m.dev->p, n_in, n_rows, out16.p, nullptr);
    std::vector<uint16_t> h(size_t(n_in) * n_rows);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    out16.get(h.data());
    for (size_t i = 0; i < h.size(); ++i) {
      const float got = fp16_to_fp32(h[i]);
      ASSERT_TRUE(std::isfinite(got));
      ASSERT_NEAR(got, m.deq[i], 1e-3 * std::fabs(m.deq[i]) + 1e-6) << type_name(t) << " " << i;
    }
    std::vector<int32_t> ids = {5, 0, 12, 5, 7};
    auto dids = upload(ids);
    Dev rows(sizeof(float) * n_in * ids.size());
    rows.poison();
    cuda::get_rows(t, m.dev->p, n_in, dids->as<int32_t>(), int(ids.size()), rows.as<float>(), nullptr);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<float> r(size_t(n_in) * ids.size());
    rows.get(r.data());
    for (size_t k = 0; k < ids.size(); ++k)
      for (int i = 0; i < n_in; ++i)
        ASSERT_EQ(r[k * n_in + i], m.deq[size_t(ids[k]) * n_in + i]) << type_name(t) << " row " << ids[k] << " col " << i;
  }
}

TEST(CudaKernels, RmsnormSwigluGather) {
  REQUIRE_GPU();
  const int n = 1000, rows = 3;
  auto x = randn(size_t(n) * rows), w = randn(n);
  auto dx = upload(x), dw = upload(w);
  Dev o(sizeof(uint16_t) * n * rows);
  o.poison();
  cuda::rmsnorm_f16(dx->as<float>(), n, dw->as<float>(), n, rows, 1e-5f, o.p, nullptr);
  std::vector<uint16_t> h(size_t(n) * rows);
  MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
  o.get(h.data());
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += double(x[r * n + i]) * x[r * n + i];
    const double inv = 1 / std::sqrt(ss / n + 1e-5);
    for (int i = 0; i < n; ++i) {
      const double want = x[r * n + i] * inv * w[i];
      ASSERT_NEAR(fp16_to_fp32(h[r * n + i]), want, 2e-3 * std::fabs(want) + 1e-4);
    }
  }
  auto g = randn(777), u = randn(777);
  auto dg = upload(g), du = upload(u);
  Dev s(sizeof(uint16_t) * 777);
  s.poison();
  cuda::swiglu_f16(dg->as<float>(), du->as<float>(), 777, s.p, nullptr);
  std::vector<uint16_t> hs(777);
  MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
  s.get(hs.data());
  for (int i = 0; i < 777; ++i) {
    const double want = g[i] / (1 + std::exp(-double(g[i]))) * u[i];
    ASSERT_NEAR(fp16_to_fp32(hs[i]), want, 2e-3 * std::fabs(want) + 1e-4);
  }
  std::vector<int32_t> idx = {2, 0, 2};
  auto di = upload(idx);
  Dev gd(sizeof(float) * n * 3);
  gd.poison();
  cuda::gather_rows(dx->as<float>(), n, di->as<int32_t>(), 3, gd.as<float>(), nullptr);
  std::vector<float> hg(size_t(n) * 3);
  MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
  gd.get(hg.data());
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < n; ++i) ASSERT_EQ(hg[k * n + i], x[idx[k] * n + i]);
}

namespace {
// CPU reference of llama.cpp's normal-mode RoPE on one head vector.
void ref_rope(float* v, int D, int n_rot, int pos, double base, double scale) {
  for (int i = 0; 2 * i < n_rot; ++i) {
    const double th = pos * scale * std::pow(base, -2.0 * i / n_rot);
    const double c = std::cos(th), s = std::sin(th);
    const double a = v[2 * i], b = v[2 * i + 1];
    v[2 * i] = float(a * c - b * s);
    v[2 * i + 1] = float(a * s + b * c);
  }
  (void)D;
}
}  // namespace

TEST(CudaKernels, RopeAndCacheWrite) {
  REQUIRE_GPU();
  const int n = 5, H = 6, HKV = 2, D = 64, n_rot = 48, n_ctx = 3000, n_seq = 2;
  auto q = randn(size_t(n) * H * D), k = randn(size_t(n) * HKV * D), v = randn(size_t(n) * HKV * D);
  std::vector<int32_t> pos = {0, 1, 2999, 77, 1500}, seq = {0, 0, 1, 1, 0};
  auto dq = upload(q), dk = upload(k), dv = upload(v), dp = upload(pos), ds = upload(seq);
  const size_t cache_elems = size_t(n_seq) * n_ctx * HKV * D;
  Dev kc(cache_elems * 2), vc(cache_elems * 2);
  kc.poison();
  vc.poison();
  cuda::RopeKvArgs a;
  a.d_q = dq->as<float>();
  a.d_k = dk->as<float>();
  a.d_v = dv->as<float>();
  a.ldq = H * D;
  a.ldk = a.ldv = HKV * D;
  a.d_pos = dp->as<int32_t>();
  a.d_seq = ds->as<int32_t>();
  a.n = n;
  a.n_head = H;
  a.n_head_kv = HKV;
  a.head_dim = D;
  a.n_rot = n_rot;
  a.freq_base = 10000.f;
  a.freq_scale = 0.5f;
  a.d_kcache = kc.p;
  a.d_vcache = vc.p;
  a.n_ctx = n_ctx;
  cuda::rope_kv(a, nullptr);
  MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> gq(q.size());
  dq->get(gq.data());
  std::vector<uint16_t> hk(cache_elems), hv(cache_elems);
  kc.get(hk.data());
  vc.get(hv.data());
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < H; ++h) {
      std::vector<float> want(q.begin() + (size_t(t) * H + h) * D, q.begin() + (size_t(t) * H + h + 1) * D);
      ref_rope(want.data(), D, n_rot, pos[t], 10000.0, 0.5);
      for (int d = 0; d < D; ++d) ASSERT_NEAR(gq[(size_t(t) * H + h) * D + d], want[d], 1e-4) << t << " " << h << " " << d;
    }
    for (int h = 0; h < HKV; ++h) {
      std::vector<float> want(k.begin() + (size_t(t) * HKV + h) * D, k.begin() + (size_t(t) * HKV + h + 1) * D);
      ref_rope(want.data(), D, n_rot, pos[t], 10000.0, 0.5);
      const size_t base = ((size_t(seq[t]) * n_ctx + pos[t]) * HKV + h) * D;
      for (int d = 0; d < D; ++d) {
        ASSERT_NEAR(fp16_to_fp32(hk[base + d]), want[d], 2e-3 * std::fabs(want[d]) + 1e-4);
        ASSERT_EQ(hv[base + d], fp32_to_fp16(v[(size_t(t) * HKV + h) * D + d]));
      }
    }
  }
}

TEST(CudaKernels, AttentionMatchesReference) {
  REQUIRE_GPU();
  struct Case { int H, HKV, D, n_ctx; };
  for (Case c : {Case{8, 2, 64, 1200}, Case{9, 3, 64, 300}, Case{4, 4, 128, 700}, Case{32, 2, 64, 2100}, Case{24, 2, 32, 600}, Case{2, 1, 256, 400}}) {
    const int n_seq = 2;
    std::vector<int32_t> pos = {0, 5, c.n_ctx - 1, 127, 128, c.n_ctx / 2};
    std::vector<int32_t> seq = {0, 1, 0, 1, 1, 0};
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
    Dev out(sizeof(float) * n * c.H * c.D);
    out.poison();
    const size_t nc = cuda::attn_counter_ints(n, c.H, c.HKV);
    Dev counters(sizeof(int) * nc);
    MINNOW_CUDA_CHECK(cudaMemset(counters.p, 0, counters.bytes));
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
    a.scale = 1.f / std::sqrt(float(c.D));
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
      for (int h = 0; h < c.H; ++h) {
        const int kvh = h / G;
        std::vector<double> s(pos[t] + 1);
        double mx = -1e300;
        for (int p = 0; p <= pos[t]; ++p) {
          const size_t base = ((size_t(seq[t]) * c.n_ctx + p) * c.HKV + kvh) * c.D;
          double d = 0;
          for (int i = 0; i < c.D; ++i) d += double(q[(size_t(t) * c.H + h) * c.D + i]) * fp16_to_fp32(kc[base + i]);
          s[p] = d / std::sqrt(double(c.D));
          mx = std::max(mx, s[p]);
        }
        double den = 0;
        for (auto& e : s) den += (e = std::exp(e - mx));
        for (int i = 0; i < c.D; ++i) {
          double num = 0;
          for (int p = 0; p <= pos[t]; ++p)
            num += s[p] * fp16_to_fp32(vc[((size_t(seq[t]) * c.n_ctx + p) * c.HKV + kvh) * c.D + i]);
          const double want = num / den;
          const float g = got[(size_t(t) * c.H + h) * c.D + i];
          ASSERT_TRUE(std::isfinite(g));
          ASSERT_NEAR(g, want, 2e-4 + 1e-3 * std::fabs(want))
              << "H=" << c.H << " D=" << c.D << " t=" << t << " h=" << h << " i=" << i << " pos=" << pos[t];
        }
      }
    }
  }
}

TEST(CudaKernels, MatvecQkvRopeMatchesSeparateOps) {
  REQUIRE_GPU();
  const int n_in = 512, H = 4, HKV = 2, D = 32, n_rot = 24, n_ctx = 50, nb = 3;
  Mat wq = make_mat(GgmlType::Q4_K, n_in, H * D), wk = make_mat(GgmlType::Q8_0, n_in, HKV * D),
      wv = make_mat(GgmlType::Q6_K, n_in, HKV * D);
  auto x = randn(size_t(nb) * n_in), norm = randn(n_in);
  std::vector<int32_t> pos = {0, 49, 17}, seq = {1, 0, 1};
  auto dx = upload(x), dn = upload(norm), dp = upload(pos), ds = upload(seq);
  std::vector<float> table(size_t(n_ctx) * n_rot);
  cuda::rope_table(n_ctx, n_rot, 500.0, 1.0, table.data());
  auto dtable = upload(table);
  for (bool use_table : {false, true}) {
  Dev q(sizeof(float) * nb * H * D), kc(2 * size_t(2) * n_ctx * HKV * D), vc(2 * size_t(2) * n_ctx * HKV * D);
  q.poison(); kc.poison(); vc.poison();
  cuda::MatvecArgs a;
  a.m[0] = {wq.dev->p, wq.type, H * D, q.as<float>(), H * D};
  a.m[1] = {wk.dev->p, wk.type, HKV * D, nullptr, 0};
  a.m[2] = {wv.dev->p, wv.type, HKV * D, nullptr, 0};
  a.n_mats = 3; a.n_in = n_in; a.d_x = dx->as<float>(); a.ldx = n_in; a.nb = nb; a.d_norm = dn->as<float>();
  a.eps = 1e-5f; a.mode = cuda::MvMode::QkvRope; a.d_pos = dp->as<int32_t>(); a.d_seq = ds->as<int32_t>();
  a.head_dim = D; a.n_rot = n_rot; a.freq_base = 500.f; a.freq_scale = 1.f; a.d_kcache = kc.p; a.d_vcache = vc.p;
  a.n_ctx = n_ctx;
  a.d_rope = use_table ? dtable->as<float>() : nullptr;
  cuda::matvec(a, nullptr);
  MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<float> gq(size_t(nb) * H * D);
  q.get(gq.data());
  std::vector<uint16_t> hk(kc.bytes / 2), hv(vc.bytes / 2);
  kc.get(hk.data());
  vc.get(hv.data());
  std::vector<double> rq, mq, rk, mk, rv, mv;
  ref_matvec(wq, x, nb, norm.data(), 1e-5f, rq, mq);
  ref_matvec(wk, x, nb, norm.data(), 1e-5f, rk, mk);
  ref_matvec(wv, x, nb, norm.data(), 1e-5f, rv, mv);
  for (int b = 0; b < nb; ++b) {
    std::vector<float> want_q(rq.begin() + size_t(b) * H * D, rq.begin() + size_t(b + 1) * H * D);
    for (int h = 0; h < H; ++h) ref_rope(want_q.data() + h * D, D, n_rot, pos[b], 500.0, 1.0);
    for (int i = 0; i < H * D; ++i) ASSERT_NEAR(gq[size_t(b) * H * D + i], want_q[i], 5 * (mq[b * H * D + i] + 1e-5)) << b << " " << i;
    std::vector<float> want_k(rk.begin() + size_t(b) * HKV * D, rk.begin() + size_t(b + 1) * HKV * D);
    for (int h = 0; h < HKV; ++h) ref_rope(want_k.data() + h * D, D, n_rot, pos[b], 500.0, 1.0);
    const size_t base = (size_t(seq[b]) * n_ctx + pos[b]) * HKV * D;
    for (int i = 0; i < HKV * D; ++i) {
      ASSERT_NEAR(fp16_to_fp32(hk[base + i]), want_k[i], 2e-3 * std::fabs(want_k[i]) + 5 * (mk[b * HKV * D + i] + 1e-5));
      ASSERT_NEAR(fp16_to_fp32(hv[base + i]), rv[b * HKV * D + i], 2e-3 * std::fabs(rv[b * HKV * D + i]) + 5 * (mv[b * HKV * D + i] + 1e-5));
    }
  }
  }
}

TEST(CudaKernels, TopIdsMatchHost) {
  REQUIRE_GPU();
  constexpr int K = Backend::kTopIds;
  for (int n_vocab : {32000, 1000, 7}) {
    const int rows = 5;
    std::vector<float> x(size_t(rows) * n_vocab);
    std::uniform_int_distribution<int> pick(0, 99);
    for (int r = 0; r < rows; ++r)
      for (int i = 0; i < n_vocab; ++i) {
        const int t = pick(rng());
        float& v = x[size_t(r) * n_vocab + i];
        // row 0: random values; the others: few distinct values (ties), NaNs and infinities
        v = r == 0 ? randn(1)[0] : t < 3 ? NAN : t < 5 ? -INFINITY : t < 6 ? INFINITY : float(t % 4);
      }
    auto dx = upload(x);
    Dev out(sizeof(int32_t) * rows * K);
    out.poison();
    cuda::top_ids_rows(dx->as<float>(), rows, n_vocab, K, out.as<int32_t>(), nullptr);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<int32_t> got(size_t(rows) * K);
    out.get(got.data());
    for (int r = 0; r < rows; ++r) {
      std::vector<int32_t> want(K);
      top_ids(x.data() + size_t(r) * n_vocab, n_vocab, want.data());
      EXPECT_EQ(std::vector<int32_t>(got.begin() + r * K, got.begin() + (r + 1) * K), want)
          << "n_vocab " << n_vocab << " row " << r;
    }
  }
}

#else
TEST(CudaKernels, NotBuilt) { GTEST_SKIP() << "built without CUDA (-DMINNOW_CUDA=ON)"; }
#endif
