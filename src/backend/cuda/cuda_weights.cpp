// DeviceWeights: the upload of a model's weights (see cuda_weights.h).
#include "backend/cuda/cuda_weights.h"

#include <cuda_runtime.h>

#include <string>

#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"

namespace minnow::cuda_impl {

using cuda::check;

DeviceWeights::DeviceWeights(const Model& model) {
  const ModelParams& p = model.params();
  try {
    embd = put_matrix(model.token_embd);
    for (const auto& L : model.layers) {
      DevLayer d;
      d.attn_norm = put_norm(L.attn_norm);
      d.q = put_matrix(L.attn_q);
      d.k = put_matrix(L.attn_k);
      d.v = put_matrix(L.attn_v);
      d.o = put_matrix(L.attn_output);
      d.ffn_norm = put_norm(L.ffn_norm);
      d.gate = put_matrix(L.ffn_gate);
      d.up = put_matrix(L.ffn_up);
      d.down = put_matrix(L.ffn_down);
      d.bq = put_vec(L.bq, p.q_dim());
      d.bk = put_vec(L.bk, p.k_dim());
      d.bv = put_vec(L.bv, p.v_dim());
      d.bo = put_vec(L.bo, p.n_embd);
      d.q_norm = put_vec(L.attn_q_norm, p.head_dim_k);
      d.k_norm = put_vec(L.attn_k_norm, p.head_dim_k);
      d.post_attn_norm = put_vec(L.post_attn_norm, p.n_embd);
      d.post_ffn_norm = put_vec(L.post_ffn_norm, p.n_embd);
      layers.push_back(d);
    }
    out_norm = put_norm(model.output_norm);
    out = put_matrix(model.output);
    rope_freqs = put_vec(model.rope_freqs, p.n_rot / 2);
  } catch (...) {
    for (void* p : allocs_) cudaFree(p);
    throw;
  }
  staging_ = {};
}

DeviceWeights::~DeviceWeights() {
  for (void* p : allocs_) cudaFree(p);
}

void* DeviceWeights::alloc(size_t bytes) {
  void* p = nullptr;
  bytes = bytes < 256 ? 256 : bytes;
  check(cudaMalloc(&p, bytes), "cudaMalloc");
  allocs_.push_back(p);
  alloc_bytes += bytes;
  return p;
}

DevMat DeviceWeights::put_matrix(const WeightView& w) {
  if (!cuda::dev_type_supported(w.type) || w.ne[0] % cuda::dev_block_elems(w.type) != 0)
    throw Error("cuda: tensor " + w.name + " has unsupported type " + std::string(type_name(w.type)));
  auto it = uploaded_.find(w.data);
  DevMat m{nullptr, w.type, int(w.ne[0]), int(w.ne[1])};
  if (it != uploaded_.end()) {
    m.d = it->second;
    return m;
  }
  const size_t bytes = cuda::dev_row_bytes(w.type, w.ne[0]) * size_t(w.ne[1]);
  void* d = alloc(bytes);
  const void* src = w.data;
  if (bytes != w.nbytes) {
    staging_.resize(bytes);
    cuda::repack_rows(w.type, w.data, w.ne[0], w.ne[1], staging_.data());
    src = staging_.data();
  }
  check(cudaMemcpy(d, src, bytes, cudaMemcpyHostToDevice), "upload weights");
  uploaded_[w.data] = d;
  m.d = d;
  return m;
}

const float* DeviceWeights::put_norm(const WeightView& w) {
  if (w.type != GgmlType::F32) throw Error("cuda: norm tensor " + w.name + " must be f32");
  float* d = static_cast<float*>(alloc(size_t(w.ne[0]) * sizeof(float)));
  check(cudaMemcpy(d, w.data, size_t(w.ne[0]) * sizeof(float), cudaMemcpyHostToDevice), "upload norm");
  return d;
}

const float* DeviceWeights::put_vec(const WeightView& w, int64_t count) {
  if (!w.data) return nullptr;
  if (w.type != GgmlType::F32 || w.ne[0] * w.ne[1] != count)
    throw Error("cuda: tensor " + w.name + " must be f32 with " + std::to_string(count) + " elements");
  float* d = static_cast<float*>(alloc(size_t(count) * sizeof(float)));
  check(cudaMemcpy(d, w.data, size_t(count) * sizeof(float), cudaMemcpyHostToDevice), "upload vector");
  return d;
}

}  // namespace minnow::cuda_impl
