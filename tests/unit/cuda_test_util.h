#pragma once
// Helpers shared by the CUDA unit tests (test_cuda_*.cpp), only in builds with CUDA: GPU detection, a seeded
// random source, and a device buffer that frees itself.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <type_traits>
#include <random>
#include <vector>

#include "backend/cuda/cuda_kernels.h"

namespace minnow::cuda_test {

inline bool have_gpu() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}
#define REQUIRE_GPU() \
  if (!::minnow::cuda_test::have_gpu()) GTEST_SKIP() << "no CUDA GPU"

inline std::mt19937& rng() {
  static std::mt19937 g(std::random_device{}());
  return g;
}
inline std::vector<float> randn(size_t n, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng());
  return v;
}

// A device buffer that frees itself.
struct Dev {
  void* p = nullptr;
  size_t bytes = 0;
  explicit Dev(size_t b) : bytes(b) { MINNOW_CUDA_CHECK(cudaMalloc(&p, b ? b : 1)); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  template <class T>
  T* as() const {
    return static_cast<T*>(p);
  }
  void put(const void* src) { MINNOW_CUDA_CHECK(cudaMemcpy(p, src, bytes, cudaMemcpyHostToDevice)); }
  void get(void* dst) const { MINNOW_CUDA_CHECK(cudaMemcpy(dst, p, bytes, cudaMemcpyDeviceToHost)); }
  void poison() { MINNOW_CUDA_CHECK(cudaMemset(p, 0xFF, bytes)); }  // all-ones bytes = NaN in f32 and f16
};
template <class T>
std::unique_ptr<Dev> upload(const std::vector<T>& v) {
  auto d = std::make_unique<Dev>(v.size() * sizeof(T));
  d->put(v.data());
  return d;
}

// Median over 5 timed batches of `reps` calls (device events), after `warmup` calls, in microseconds per call.
// f is called as f(i) with the call's index when it takes one, else as f().
template <class F>
double median_us(F&& f, int reps, int warmup) {
  auto call = [&](int i) {
    if constexpr (std::is_invocable_v<F&, int>) f(i);
    else f();
  };
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < warmup; ++i) call(i);
  std::vector<float> ms;
  for (int r = 0; r < 5; ++r) {
    cudaEventRecord(a);
    for (int i = 0; i < reps; ++i) call(i);
    cudaEventRecord(b);
    MINNOW_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms[2] * 1000.0 / reps;
}

}  // namespace minnow::cuda_test
