#pragma once
// Model hyperparameters, read from GGUF metadata under the "{general.architecture}." prefix: the common keys
// here (model_params.cpp), the architecture's own through its file in the registry (model/arch.h).
// Nothing is inferred from tensor sizes; a missing required key is an Error naming the key.
#include <cstdint>
#include <string>
#include <vector>

#include "model/layer_spec.h"

namespace minnow {

class GgufFile;

struct ModelParams {
  std::string arch;          // general.architecture ("llama", "qwen2", ...: model/arch_registry.cpp)
  int64_t n_layer = 0;       // block_count
  int64_t n_embd = 0;        // embedding_length
  int64_t n_head = 0;        // attention.head_count
  int64_t n_head_kv = 0;     // attention.head_count_kv (default n_head)
  int64_t n_ff = 0;          // feed_forward_length
  int64_t head_dim_k = 0;    // attention.key_length (default n_embd / n_head)
  int64_t head_dim_v = 0;    // attention.value_length (default n_embd / n_head)
  int64_t n_rot = 0;         // rope.dimension_count (default head_dim_k)
  double rope_freq_base = 10000.0;  // rope.freq_base
  double rope_freq_scale = 1.0;     // 1 / rope.scaling.factor for linear scaling, else 1
  double rms_eps = 0;        // attention.layer_norm_rms_epsilon
  int64_t n_ctx_train = 0;   // context_length
  int64_t n_ctx_orig = 0;    // rope.scaling.original_context_length (default n_ctx_train)
  int64_t n_vocab = 0;       // length of tokenizer.ggml.tokens

  ModelFeatures features;        // the canonical layer's switches (model/layer_spec.h)
  std::vector<LayerSpec> layer;  // [n_layer] per-layer sliding window and RoPE base

  int64_t n_gqa() const { return n_head / n_head_kv; }  // query heads per KV head
  int64_t q_dim() const { return n_head * head_dim_k; }
  int64_t k_dim() const { return n_head_kv * head_dim_k; }
  int64_t v_dim() const { return n_head_kv * head_dim_v; }

  // Reads and validates every value; throws Error with a one-line message on anything missing or wrong.
  static ModelParams from_gguf(const GgufFile& f);
  std::string summary() const;  // one line for logs
};

}  // namespace minnow
