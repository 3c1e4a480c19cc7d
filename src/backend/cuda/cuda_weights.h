#pragma once
// The model's weights on the device: every matrix in the device block layout of cuda_kernels.h (uploaded once,
// shared when two views point at the same bytes, e.g. a tied output), the f32 norm vectors. Owns the memory.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/model.h"
#include "quant/ggml_type.h"

namespace minnow::cuda_impl {

struct DevMat {
  const void* d = nullptr;  // [n_out][dev_row_bytes(type, n_in)]
  GgmlType type = GgmlType::F32;
  int n_in = 0, n_out = 0;
};

struct DevLayer {
  const float* attn_norm = nullptr;  // [n_embd]
  DevMat q, k, v, o;
  const float* ffn_norm = nullptr;  // [n_embd]
  DevMat gate, up, down;
  // Optional vectors (nullptr when the model has none; ModelFeatures says which are present).
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;  // [q_dim], [k_dim], [v_dim], [n_embd]
  const float *q_norm = nullptr, *k_norm = nullptr;                       // [head_dim]
  const float *post_attn_norm = nullptr, *post_ffn_norm = nullptr;        // [n_embd]
};

class DeviceWeights {
 public:
  explicit DeviceWeights(const Model& model);  // uploads; throws Error naming a tensor of an unsupported type
  ~DeviceWeights();
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;

  DevMat embd, out;
  const float* out_norm = nullptr;
  const float* rope_freqs = nullptr;  // [n_rot / 2] frequency factors, or nullptr
  std::vector<DevLayer> layers;
  size_t alloc_bytes = 0;  // device bytes of all weights

 private:
  void* alloc(size_t bytes);  // owned, counted in alloc_bytes
  DevMat put_matrix(const WeightView& w);
  const float* put_norm(const WeightView& w);
  // An optional f32 vector of `count` elements: nullptr when absent; Error naming it when its size differs.
  const float* put_vec(const WeightView& w, int64_t count);
  std::vector<void*> allocs_;
  std::map<const void*, const void*> uploaded_;  // host bytes -> device copy
  std::vector<uint8_t> staging_;
};

}  // namespace minnow::cuda_impl
