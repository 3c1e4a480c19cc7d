// Timings of the CUDA decode kernels at TinyLlama-1.1B shapes (random Q4_K / Q6_K weights), printed for the
// notes (docs/cuda_notes.md); nothing here asserts on time. Skips without a GPU or without CUDA.
#include <gtest/gtest.h>

#ifdef MINNOW_HAVE_CUDA
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cuda/cuda_kernels.h"
#include "cuda_test_util.h"
#include "quant/ggml_type.h"

using namespace minnow;
using namespace minnow::cuda_test;

namespace {


// Random bytes in ggml layout with sane f16 scales, uploaded in the device layout.
void* random_matrix(GgmlType t, int n_in, int n_out, std::mt19937& g) {
  const size_t rb = row_bytes(t, n_in), bb = traits(t).type_size;
  std::vector<uint8_t> raw(rb * n_out);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : raw) b = uint8_t(byte(g));
  for (size_t off = 0; off < raw.size(); off += bb) {
    uint8_t* blk = raw.data() + off;
    const uint16_t h = 0x1800;  // ~0.0005
    if (t == GgmlType::Q4_K) { std::memcpy(blk, &h, 2); std::memcpy(blk + 2, &h, 2); }
    if (t == GgmlType::Q6_K) std::memcpy(blk + 208, &h, 2);
  }
  std::vector<uint8_t> packed(cuda::dev_row_bytes(t, n_in) * n_out);
  cuda::repack_rows(t, raw.data(), n_in, n_out, packed.data());
  void* d = nullptr;
  MINNOW_CUDA_CHECK(cudaMalloc(&d, packed.size()));
  MINNOW_CUDA_CHECK(cudaMemcpy(d, packed.data(), packed.size(), cudaMemcpyHostToDevice));
  return d;
}

template <class F>
double time_us(F&& f, int reps = 200) {
  return median_us(f, reps, 10);
}

}  // namespace

TEST(CudaPerf, DecodeKernelsTinyLlamaShapes) {
  if (!have_gpu()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937 g(1234);
  const int E = 2048, KV = 256, F = 5632, NV = 32000;
  // Several copies of a layer's weights so repeated runs are not served from the 50 MB L2.
  const int copies = 8;
  std::vector<void*> wq, wk, wv, wo, wg, wu, wd;
  for (int c = 0; c < copies; ++c) {
    wq.push_back(random_matrix(GgmlType::Q4_K, E, E, g));
    wk.push_back(random_matrix(GgmlType::Q4_K, E, KV, g));
    wv.push_back(random_matrix(GgmlType::Q6_K, E, KV, g));
    wo.push_back(random_matrix(GgmlType::Q4_K, E, E, g));
    wg.push_back(random_matrix(GgmlType::Q4_K, E, F, g));
    wu.push_back(random_matrix(GgmlType::Q4_K, E, F, g));
    wd.push_back(random_matrix(GgmlType::Q6_K, F, E, g));
  }
  void* wout = random_matrix(GgmlType::Q6_K, E, NV, g);
  float *x, *y, *q, *k, *v, *h, *norm, *logits;
  std::vector<float> hx(8 * F);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& e : hx) e = nd(g);
  for (float** p : {&x, &y, &q, &k, &v, &h, &norm}) {
    MINNOW_CUDA_CHECK(cudaMalloc(p, sizeof(float) * 8 * F));
    MINNOW_CUDA_CHECK(cudaMemcpy(*p, hx.data(), sizeof(float) * 8 * F, cudaMemcpyHostToDevice));
  }
  MINNOW_CUDA_CHECK(cudaMalloc(&logits, sizeof(float) * 8 * NV));
  // QKV runs as in decode: RoPE + f16 KV-cache write fused (positions 0..7 of slot 0, 16-position cache).
  int32_t* pos_seq;
  void *kc0, *vc0;
  {
    int32_t hp[16] = {0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0};
    MINNOW_CUDA_CHECK(cudaMalloc(&pos_seq, sizeof(hp)));
    MINNOW_CUDA_CHECK(cudaMemcpy(pos_seq, hp, sizeof(hp), cudaMemcpyHostToDevice));
    MINNOW_CUDA_CHECK(cudaMalloc(&kc0, size_t(16) * KV * 2));
    MINNOW_CUDA_CHECK(cudaMalloc(&vc0, size_t(16) * KV * 2));
  }
  int c = 0;
  for (int nb : {1, 8}) {
    auto qkv = [&] {
      cuda::MatvecArgs a;
      a.m[0] = {wq[c], GgmlType::Q4_K, E, q, E};
      a.m[1] = {wk[c], GgmlType::Q4_K, KV, k, KV};
      a.m[2] = {wv[c], GgmlType::Q6_K, KV, v, KV};
      a.n_mats = 3; a.n_in = E; a.d_x = x; a.ldx = E; a.nb = nb; a.d_norm = norm;
      a.mode = cuda::MvMode::QkvRope; a.d_pos = pos_seq; a.d_seq = pos_seq + 8; a.head_dim = 64; a.n_rot = 64;
      a.d_kcache = kc0; a.d_vcache = vc0; a.n_ctx = 16;
      cuda::matvec(a, nullptr);
      c = (c + 1) % copies;
    };
    auto o = [&] {
      cuda::MatvecArgs a;
      a.m[0] = {wo[c], GgmlType::Q4_K, E, y, E};
      a.n_in = E; a.d_x = q; a.ldx = E; a.nb = nb; a.mode = cuda::MvMode::Add;
      cuda::matvec(a, nullptr);
      c = (c + 1) % copies;
    };
    auto gu = [&] {
      cuda::MatvecArgs a;
      a.m[0] = {wg[c], GgmlType::Q4_K, F, h, F};
      a.m[1] = {wu[c], GgmlType::Q4_K, F, nullptr, F};
      a.n_mats = 2; a.n_in = E; a.d_x = x; a.ldx = E; a.nb = nb; a.d_norm = norm; a.mode = cuda::MvMode::SwiGLU;
      cuda::matvec(a, nullptr);
      c = (c + 1) % copies;
    };
    auto down = [&] {
      cuda::MatvecArgs a;
      a.m[0] = {wd[c], GgmlType::Q6_K, E, y, E};
      a.n_in = F; a.d_x = h; a.ldx = F; a.nb = nb; a.mode = cuda::MvMode::Add;
      cuda::matvec(a, nullptr);
      c = (c + 1) % copies;
    };
    auto out = [&] {
      cuda::MatvecArgs a;
      a.m[0] = {wout, GgmlType::Q6_K, NV, logits, NV};
      a.n_in = E; a.d_x = x; a.ldx = E; a.nb = nb; a.d_norm = norm;
      cuda::matvec(a, nullptr);
    };
    const double bq = (double(E) * E + double(E) * KV) * 144 / 256 + double(E) * KV * 210 / 256;
    const double bo = double(E) * E * 144 / 256, bg = 2.0 * E * F * 144 / 256, bd = double(F) * E * 210 / 256;
    const double bout = double(E) * NV * 210 / 256;
    struct Row { const char* name; double us, bytes; } rows[] = {
        {"qkv+rope+kv (norm, Q4_K,Q4_K,Q6_K)", time_us(qkv), bq},
        {"attn_output (Q4_K, +=)", time_us(o), bo},
        {"gate+up (norm, Q4_K, SwiGLU)", time_us(gu), bg},
        {"down (Q6_K, +=)", time_us(down), bd},
        {"output (norm, Q6_K 32000)", time_us(out, 50), bout},
    };
    double layer_us = 0;
    for (auto& r : rows) {
      std::printf("[perf] nb=%d %-30s %8.2f us  %7.1f GB/s\n", nb, r.name, r.us, r.bytes / r.us * 1e-3);
      if (&r != &rows[4]) layer_us += r.us;
    }
    std::printf("[perf] nb=%d mat-vec per layer %.2f us; 22 layers + output = %.1f us/token (%.0f tok/s bound)\n", nb,
                layer_us, 22 * layer_us + rows[4].us, 1e6 / (22 * layer_us + rows[4].us) * nb);
  }
  // Attention at depth 2048 (TinyLlama: 32 heads, 4 KV heads, D 64), one token.
  {
    const int H = 32, HKV = 4, D = 64, n_ctx = 4096;
    void *kc, *vc;
    const size_t ce = size_t(n_ctx) * HKV * D;
    std::vector<uint16_t> hk(ce, 0x3000);
    MINNOW_CUDA_CHECK(cudaMalloc(&kc, ce * 2));
    MINNOW_CUDA_CHECK(cudaMalloc(&vc, ce * 2));
    cudaMemcpy(kc, hk.data(), ce * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(vc, hk.data(), ce * 2, cudaMemcpyHostToDevice);
    int32_t* pos;
    float* scratch;
    MINNOW_CUDA_CHECK(cudaMalloc(&pos, 8));
    MINNOW_CUDA_CHECK(cudaMalloc(&scratch, sizeof(float) * cuda::attn_scratch_floats(1, H, D, n_ctx)));
    int* counters;
    MINNOW_CUDA_CHECK(cudaMalloc(&counters, sizeof(int) * cuda::attn_counter_ints(1, H, HKV)));
    MINNOW_CUDA_CHECK(cudaMemset(counters, 0, sizeof(int) * cuda::attn_counter_ints(1, H, HKV)));
    for (int depth : {16, 512, 2048}) {
      int32_t hp[2] = {depth, 0};
      cudaMemcpy(pos, hp, 8, cudaMemcpyHostToDevice);
      cuda::AttnArgs a;
      a.d_q = q; a.ldq = H * D; a.d_kcache = kc; a.d_vcache = vc; a.d_pos = pos; a.d_seq = pos + 1; a.n = 1;
      a.n_head = H; a.n_head_kv = HKV; a.head_dim = D; a.n_ctx = n_ctx; a.scale = 0.125f; a.d_scratch = scratch; a.d_counters = counters;
      a.d_out = y; a.ldo = H * D;
      const double us = time_us([&] { cuda::attention(a, nullptr); });
      std::printf("[perf] attention depth %5d: %7.2f us (x22 layers = %.1f us)\n", depth, us, 22 * us);
    }
  }
  MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
}

#else
TEST(CudaPerf, NotBuilt) { GTEST_SKIP() << "built without CUDA (-DMINNOW_CUDA=ON)"; }
#endif
