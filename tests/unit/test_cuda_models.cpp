// The whole CUDA backend against the CPU backend on the small model of every architecture in ../shared/models
// (each brings its layer features: rope_freqs, biases + NeoX, Q/K norms + head_dim, GELU + post norms + embedding
// scale + sliding window + per-layer base, fused tensors): a 70-token prompt of sequence 0 and a 40-token prompt of
// sequence 1 in one prefill pass, then decode passes of 1 and 3 tokens (the mat-vec path), every row's logits.
// A model the model layer does not load is skipped (named); no GPU: skipped; one skipped test without CUDA.
#include <gtest/gtest.h>

#ifdef MINNOW_HAVE_CUDA
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "common/error.h"
#include "cuda_test_util.h"
#include "model/layer_spec.h"
#include "model/model.h"

using namespace minnow;
using namespace minnow::cuda_test;

namespace {

std::string shared_dir() {
  const char* s = std::getenv("MINNOW_SHARED_DIR");
  return s && *s ? s : MINNOW_SHARED_DIR;
}

std::vector<Batch> batches(int n_vocab) {
  std::vector<Batch> b(4);
  auto tok = [&](int i) { return 3 + (i * 7919 + 11) % (n_vocab - 3); };
  int p0 = 0, p1 = 0, i = 0;
  for (; p0 < 70 || p1 < 40; ++i) {  // interleaved prefill of two sequences
    if (p1 < 40 && (i % 3 == 2 || p0 >= 70)) b[0].add(tok(i), p1++, 1, true);
    else b[0].add(tok(i), p0++, 0, true);
  }
  b[1].add(tok(i++), p0++, 0, true);  // decode: one token
  for (int k = 0; k < 3; ++k) b[2].add(tok(i++), p1++, 1, k != 1);  // three tokens of one sequence
  b[3].add(tok(i++), p0++, 0, true);
  b[3].add(tok(i++), p1++, 1, true);
  return b;
}

double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

TEST(CudaModels, EveryArchitectureMatchesTheCpu) {
  REQUIRE_GPU();
  int ran = 0;
  for (const char* arch : {"llama3", "qwen2", "qwen3", "gemma3", "phi3"}) {
    const std::string path = shared_dir() + "/models/" + arch + "-tiny.gguf";
    if (!std::filesystem::exists(path)) {
      std::printf("%s: no %s, skipped\n", arch, path.c_str());
      continue;
    }
    std::unique_ptr<Model> model;
    try {
      model = Model::load(path);
    } catch (const Error& e) {
      std::printf("%s: the model layer does not load it (%s), skipped\n", arch, e.what());
      continue;
    }
    const auto& p = model->params();
    std::string feats;
    for (const auto& f : features_in_use(p.features, p.layer)) feats += f + "; ";
    const int V = int(p.n_vocab);
    const std::vector<Batch> bs = batches(V);
    BackendOptions opt;
    opt.n_ctx = 256;
    opt.n_seq_max = 2;
    opt.n_threads = 2;
    std::vector<float> cpu, gpu;
    std::vector<size_t> ends_cpu, ends_gpu;
    {
      auto be = make_cpu_backend(*model, opt);
      for (const Batch& b : bs) {
        be->forward(b, cpu);
        ends_cpu.push_back(cpu.size());
      }
    }
    {
      auto be = make_cuda_backend(*model, opt);
      for (const Batch& b : bs) {
        be->forward(b, gpu);
        ends_gpu.push_back(gpu.size());
      }
    }
    ASSERT_EQ(ends_cpu, ends_gpu) << arch;
    size_t r0 = 0;
    for (size_t k = 0; k < bs.size(); ++k) {
      for (size_t i = r0; i < ends_gpu[k]; ++i) ASSERT_TRUE(std::isfinite(gpu[i])) << arch << " pass " << k;
      // per row: relative L2 of the logits (the bound of test_cuda_large: the CPU rounds activations to int8;
      // a missing feature moves the logits far more), and the same argmax where the CPU's top two are 0.5 apart
      for (size_t r = r0; r < ends_gpu[k]; r += size_t(V)) {
        const double e = rel_l2(gpu.data() + r, cpu.data() + r, size_t(V));
        EXPECT_LT(e, 0.1) << arch << " pass " << k << " row " << (r - r0) / V << " (features: " << feats << ")";
        size_t a = r, g = r;
        for (size_t j = r; j < r + size_t(V); ++j) {
          if (cpu[j] > cpu[a]) a = j;
          if (gpu[j] > gpu[g]) g = j;
        }
        float second = -INFINITY;
        for (size_t j = r; j < r + size_t(V); ++j)
          if (j != a) second = std::max(second, cpu[j]);
        if (cpu[a] - second > 0.5f) {
          EXPECT_EQ(g - r, a - r) << arch << " pass " << k << " argmax";
        }
      }
      std::printf("%s pass %zu (%zu rows): rel L2 vs CPU of the whole pass %.2e  [%s]\n", arch, k, (ends_gpu[k] - r0) / V,
                  rel_l2(gpu.data() + r0, cpu.data() + r0, ends_gpu[k] - r0), feats.c_str());
      r0 = ends_gpu[k];
    }
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "no architecture model loaded";
}

}  // namespace

#else
TEST(CudaModels, NotBuilt) { GTEST_SKIP() << "built without CUDA (-DMINNOW_CUDA=ON)"; }
#endif
