// The CUDA backend's large-batch path (run_large: more than 32 tokens per forward chunk): every variant
// (f16 dequant scratch, resident f16 weights, with the profile on) computes the same logits as the others and
// close to the CPU backend, on the tiny TinyLlama-shaped model, with two sequences interleaved in one batch. Also
// the strided SwiGLU and RoPE from the angle table against CPU references. Skips without a GPU; one skipped test in builds without CUDA.
#include <gtest/gtest.h>

#ifdef MINNOW_HAVE_CUDA
#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_kernels.h"
#include "cuda_test_util.h"
#include "common/error.h"
#include "model/model.h"
#include "quant/quant_ref.h"

using namespace minnow;
using namespace minnow::cuda_test;

namespace {



const char* kEnv[] = {"MINNOW_CUDA_F16W", "MINNOW_CUDA_PROFILE"};

// Runs `batches` through a fresh CUDA backend built under the given environment; returns all logits.
std::vector<float> run_cuda(const Model& m, const std::map<std::string, std::string>& env,
                            const std::vector<Batch>& batches) {
  for (const char* k : kEnv) unsetenv(k);
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
  BackendOptions opt;
  opt.n_ctx = 256;
  opt.n_seq_max = 3;
  std::vector<float> logits;
  {
    auto be = make_cuda_backend(m, opt);
    for (const Batch& b : batches) be->forward(b, logits);
  }
  for (const char* k : kEnv) unsetenv(k);
  return logits;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace

TEST(CudaLarge, SwigluStridedMatchesReference) {
  REQUIRE_GPU();
  const int n_ff = 333, rows = 7, ld = 2 * n_ff + 5;
  std::normal_distribution<float> d(0.f, 2.f);
  std::vector<float> gu(size_t(rows) * ld);
  for (auto& x : gu) x = d(rng());
  float* d_gu = nullptr;
  void* d_o = nullptr;
  MINNOW_CUDA_CHECK(cudaMalloc(&d_gu, gu.size() * sizeof(float)));
  MINNOW_CUDA_CHECK(cudaMalloc(&d_o, size_t(rows) * n_ff * 2));
  MINNOW_CUDA_CHECK(cudaMemcpy(d_gu, gu.data(), gu.size() * sizeof(float), cudaMemcpyHostToDevice));
  MINNOW_CUDA_CHECK(cudaMemset(d_o, 0xFF, size_t(rows) * n_ff * 2));  // NaN
  cuda::swiglu_f16_ld(d_gu, ld, n_ff, rows, d_o, nullptr);
  std::vector<uint16_t> h(size_t(rows) * n_ff);
  MINNOW_CUDA_CHECK(cudaMemcpy(h.data(), d_o, h.size() * 2, cudaMemcpyDeviceToHost));
  cudaFree(d_gu);
  cudaFree(d_o);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < n_ff; ++i) {
      const double g = gu[size_t(r) * ld + i], u = gu[size_t(r) * ld + n_ff + i];
      const double want = g / (1 + std::exp(-g)) * u;
      ASSERT_NEAR(fp16_to_fp32(h[size_t(r) * n_ff + i]), want, 2e-3 * std::fabs(want) + 1e-4) << r << " " << i;
    }
  EXPECT_THROW(cuda::swiglu_f16_ld(nullptr, n_ff, n_ff, 1, nullptr, nullptr), Error);
}

namespace {
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DevBuf(size_t b) : bytes(b) { MINNOW_CUDA_CHECK(cudaMalloc(&p, b ? b : 1)); }
  ~DevBuf() { cudaFree(p); }
  template <class T> T* as() const { return static_cast<T*>(p); }
  template <class T> void put(const std::vector<T>& v) {
    MINNOW_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  template <class T> std::vector<T> get(size_t n) const {
    std::vector<T> v(n);
    MINNOW_CUDA_CHECK(cudaDeviceSynchronize());
    MINNOW_CUDA_CHECK(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
};
std::vector<float> randv(size_t n) {
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng());
  return v;
}
}  // namespace

TEST(CudaLarge, RopeFromTableMatchesComputed) {
  REQUIRE_GPU();
  const int n = 37, H = 6, HKV = 2, D = 64, n_rot = 48, n_ctx = 300;
  auto q = randv(size_t(n) * H * D), k = randv(size_t(n) * HKV * D), v = randv(size_t(n) * HKV * D);
  std::vector<int32_t> pos(n), seq(n);
  std::uniform_int_distribution<int> dp(0, n_ctx - 1);
  for (int i = 0; i < n; ++i) {
    pos[i] = dp(rng());
    seq[i] = i;  // distinct cache rows
  }
  std::vector<float> table(size_t(n_ctx) * (n_rot / 2) * 2);
  cuda::rope_table(n_ctx, n_rot, 10000.0, 1.0, table.data());
  DevBuf dq(q.size() * 4), dk(k.size() * 4), dv(v.size() * 4), dpos(n * 4), dseq(n * 4), dt(table.size() * 4);
  dk.put(k);
  dv.put(v);
  dpos.put(pos);
  dseq.put(seq);
  dt.put(table);
  const size_t cache = size_t(n) * n_ctx * HKV * D;
  std::vector<float> outq[2];
  std::vector<uint16_t> outk[2];
  for (int use : {0, 1}) {
    DevBuf kc(cache * 2), vc(cache * 2);
    dq.put(q);
    cuda::RopeKvArgs a;
    a.d_q = dq.as<float>();
    a.d_k = dk.as<float>();
    a.d_v = dv.as<float>();
    a.ldq = H * D;
    a.ldk = a.ldv = HKV * D;
    a.d_pos = dpos.as<int32_t>();
    a.d_seq = dseq.as<int32_t>();
    a.n = n;
    a.n_head = H;
    a.n_head_kv = HKV;
    a.head_dim = D;
    a.n_rot = n_rot;
    a.d_kcache = kc.p;
    a.d_vcache = vc.p;
    a.n_ctx = n_ctx;
    a.d_rope = use ? dt.as<float>() : nullptr;
    cuda::rope_kv(a, nullptr);
    outq[use] = dq.get<float>(q.size());
    std::vector<uint16_t> all = kc.get<uint16_t>(cache);
    for (int i = 0; i < n; ++i) {
      const size_t row = (size_t(seq[i]) * n_ctx + pos[i]) * HKV * D;
      outk[use].insert(outk[use].end(), all.begin() + long(row), all.begin() + long(row + HKV * D));
    }
  }
  for (size_t i = 0; i < q.size(); ++i) ASSERT_NEAR(outq[1][i], outq[0][i], 1e-6 * (1 + std::fabs(outq[0][i]))) << i;
  for (size_t i = 0; i < outk[0].size(); ++i)
    ASSERT_NEAR(fp16_to_fp32(outk[1][i]), fp16_to_fp32(outk[0][i]), 1e-3 * (1 + std::fabs(fp16_to_fp32(outk[0][i])))) << i;
  int moved = 0;  // the rotation did something
  for (size_t i = 0; i < q.size(); ++i) moved += std::fabs(outq[1][i] - q[i]) > 1e-3f;
  EXPECT_GT(moved, int(q.size() / 4));
}

TEST(CudaLarge, EveryLargeBatchVariantAgrees) {
  REQUIRE_GPU();
  const char* shared = std::getenv("MINNOW_SHARED_DIR");
  const std::string path = std::string(shared && *shared ? shared : MINNOW_SHARED_DIR) + "/models/tiny-llama-q4km.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  auto model = Model::load(path);
  const int n_vocab = int(model->params().n_vocab);
  std::uniform_int_distribution<int> tok(3, n_vocab - 1);
  // Pass 1: sequences 0 (71 tokens) and 1 (45 tokens) interleaved, every row's logits (GEMM output path).
  // Pass 2: 40 more tokens of sequence 0 and 9 of sequence 2, logits of 5 rows (mat-vec output path).
  std::vector<Batch> batches(2);
  int p0 = 0, p1 = 0, p2 = 0;
  for (int i = 0; i < 116; ++i) {
    if (i % 3 == 2 && p1 < 45) batches[0].add(tok(rng()), p1++, 1, true);
    else if (p0 < 71) batches[0].add(tok(rng()), p0++, 0, true);
    else batches[0].add(tok(rng()), p1++, 1, true);
  }
  for (int i = 0; i < 49; ++i) {
    if (i < 40) batches[1].add(tok(rng()), p0++, 0, i % 9 == 4);
    else batches[1].add(tok(rng()), p2++, 2, i == 48);
  }
  const size_t want_rows = 116 + 5;

  BackendOptions copt;
  copt.n_ctx = 256;
  copt.n_seq_max = 3;
  copt.n_threads = 2;
  std::vector<float> cpu;
  {
    auto be = make_cpu_backend(*model, copt);
    for (const Batch& b : batches) be->forward(b, cpu);
  }
  ASSERT_EQ(cpu.size(), want_rows * n_vocab);

  const std::vector<std::map<std::string, std::string>> variants = {
      {{"MINNOW_CUDA_F16W", "0"}},
      {{"MINNOW_CUDA_F16W", "0"}, {"MINNOW_CUDA_PROFILE", "1"}},
      {{"MINNOW_CUDA_F16W", "1"}},
      {},  // the defaults
  };
  std::vector<float> first;
  for (size_t v = 0; v < variants.size(); ++v) {
    std::vector<float> got = run_cuda(*model, variants[v], batches);
    ASSERT_EQ(got.size(), want_rows * n_vocab) << "variant " << v;
    for (size_t i = 0; i < got.size(); ++i) ASSERT_TRUE(std::isfinite(got[i])) << "variant " << v << " at " << i;
    const double e_cpu = rel_l2(got, cpu);
    EXPECT_LT(e_cpu, 0.1) << "variant " << v << " vs CPU";  // the CPU rounds activations to int8 (measured 3e-2)
    if (v == 0) first = got;
    else EXPECT_LT(rel_l2(got, first), 5e-3) << "variant " << v << " vs variant 0";
    std::printf("variant %zu: rel L2 vs CPU %.2e, vs variant 0 %.2e\n", v, e_cpu, v ? rel_l2(got, first) : 0.0);
  }
}

#else
TEST(CudaLarge, NotBuilt) { GTEST_SKIP() << "built without CUDA (-DMINNOW_CUDA=ON)"; }
#endif
