#pragma once
// A decoder-only model (any architecture of model/arch_registry.cpp): hyperparameters plus views of its weight tensors inside the GGUF mapping.
// Weights are never copied; the Model owns the GgufFile so the views stay valid while it lives.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model_params.h"
#include "quant/ggml_type.h"

namespace minnow {

class GgufFile;

// A 1-D or 2-D tensor in the mapping. ne[0] is the contiguous (input) dimension, ne[1] the rows.
struct WeightView {
  std::string name;
  const uint8_t* data = nullptr;  // into the GGUF mapping
  GgmlType type = GgmlType::F32;
  int64_t ne[2] = {1, 1};         // [ne0 = row length, ne1 = rows]
  size_t nbytes = 0;
  size_t row_stride() const;      // bytes per row
  const float* f32() const { return reinterpret_cast<const float*>(data); }  // only for F32 tensors
};

struct LayerWeights {
  WeightView attn_norm;    // [n_embd] F32
  WeightView attn_q;       // [n_embd, n_head * head_dim]
  WeightView attn_k;       // [n_embd, n_head_kv * head_dim]
  WeightView attn_v;       // [n_embd, n_head_kv * head_dim]
  WeightView attn_output;  // [n_head * head_dim, n_embd]
  WeightView ffn_norm;     // [n_embd] F32
  WeightView ffn_gate;     // [n_embd, n_ff]
  WeightView ffn_up;       // [n_embd, n_ff]
  WeightView ffn_down;     // [n_ff, n_embd]
  // Optional tensors (data == nullptr when the architecture has none; ModelFeatures says which are present).
  WeightView bq, bk, bv, bo;              // [q_dim], [k_dim], [v_dim], [n_embd] F32 (qkv_bias, o_bias)
  WeightView attn_q_norm, attn_k_norm;    // [head_dim] F32 (qk_norm)
  WeightView post_attn_norm;              // [n_embd] F32 (post_attn_norm)
  WeightView post_ffn_norm;               // [n_embd] F32 (post_ffn_norm)
};

class Model {
 public:
  // Opens and maps the file, reads the hyperparameters and checks every tensor's shape and type.
  static std::unique_ptr<Model> load(const std::string& path);
  static std::unique_ptr<Model> from_gguf(std::unique_ptr<GgufFile> file);
  ~Model();

  const ModelParams& params() const { return params_; }
  const GgufFile& gguf() const { return *file_; }

  WeightView token_embd;            // [n_embd, n_vocab]
  std::vector<LayerWeights> layers;   // [n_layer]
  WeightView output_norm;           // [n_embd] F32
  WeightView output;                // [n_embd, n_vocab] (token_embd when the file has no output.weight)
  bool output_tied = false;
  WeightView rope_freqs;            // [n_rot / 2] F32 (features.rope_freq_factors), else data == nullptr
  // [n_rot / 2] F32: factors that replace rope_freqs when the context exceeds params().n_ctx_orig (phi3's
  // rope_factors_long; rope_freqs then holds rope_factors_short), else data == nullptr
  WeightView rope_freqs_long;

  size_t weight_bytes() const;      // bytes of weights read per generated token

 private:
  Model() = default;
  std::unique_ptr<GgufFile> file_;
  ModelParams params_;
};

}  // namespace minnow
