#pragma once
// The KV cache on the device: f16 K and V of every layer, [n_layer][n_seq][n_ctx][n_head_kv * head_dim] each.
// Nothing is ever cleared: positions restart at 0 and each position is written before it is read.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "backend/cuda/cuda_kernels.h"

namespace minnow::cuda_impl {

class KvCache {
 public:
  KvCache(int n_layer, int n_seq, int n_ctx, int kv_dim)
      : n_seq_(n_seq), n_ctx_(n_ctx), kv_dim_(kv_dim) {
    const size_t elems = size_t(n_layer) * size_t(n_seq) * size_t(n_ctx) * size_t(kv_dim);
    bytes_ = 2 * elems * sizeof(__half);
    cuda::check(cudaMalloc(&k_, elems * sizeof(__half)), "cudaMalloc (K cache)");
    if (cudaMalloc(&v_, elems * sizeof(__half)) != cudaSuccess) {
      cudaFree(k_);
      cuda::check(cudaErrorMemoryAllocation, "cudaMalloc (V cache)");
    }
  }
  ~KvCache() {
    cudaFree(k_);
    cudaFree(v_);
  }
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  __half* k(int layer) const { return static_cast<__half*>(k_) + offset(layer); }
  __half* v(int layer) const { return static_cast<__half*>(v_) + offset(layer); }
  size_t bytes() const { return bytes_; }
  int n_seq() const { return n_seq_; }
  int n_ctx() const { return n_ctx_; }

 private:
  size_t offset(int layer) const { return size_t(layer) * size_t(n_seq_) * size_t(n_ctx_) * size_t(kv_dim_); }
  void* k_ = nullptr;
  void* v_ = nullptr;
  int n_seq_, n_ctx_, kv_dim_;
  size_t bytes_ = 0;
};

}  // namespace minnow::cuda_impl
