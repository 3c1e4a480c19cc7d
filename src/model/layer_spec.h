#pragma once
// The canonical description of a decoder-only transformer that every backend computes. An architecture file
// (src/model/arch_*.cpp) maps its metadata keys, tensor names and quirks onto this; backends read only this and
// never an architecture's name. A backend that cannot compute a feature refuses it at load, naming the feature
// (features_in_use lists them).
//
// One layer, as the backends compute it (x: the residual stream, [n_tokens][n_embd]):
//   h   = norm(x) * attn_norm
//   q,k,v = h Wq (+ bq), h Wk (+ bk), h Wv (+ bv)                      [fused QKV: views of one tensor]
//   q,k = per-head norm(q) * q_norm, norm(k) * k_norm                  (qk_norm)
//   q,k = rope(q, k; style, n_rot, layer base, freq_factors)           (first n_rot dims of each head)
//   a   = softmax(attn_scale * q k^T [+ causal, sliding window]) v
//   a   = a Wo (+ bo);  a = norm(a) * post_attn_norm                   (post_attn_norm)
//   x  += a
//   h   = norm(x) * ffn_norm
//   f   = act(h Wgate) * (h Wup);  f = f Wdown;  f = norm(f) * post_ffn_norm   (post_ffn_norm)
//   x  += f
// Model: x0 = embd[token] * embd_scale; logits = (norm(x) * output_norm) Wout; logits = c * tanh(logits / c)
// when final_logit_softcap c > 0.
#include <cstdint>
#include <string>
#include <vector>

namespace minnow {

enum class NormKind {
  RMS,  // y = x / sqrt(mean(x^2) + eps) * w   (weights used as stored: a +1 convention is folded in at load)
};

enum class GatedAct {
  SiLU,      // SwiGLU: silu(gate) * up
  GeluTanh,  // GeGLU with the tanh approximation of GELU: gelu_tanh(gate) * up
};

enum class RopeStyle {
  Adjacent,  // rotate (x[2i], x[2i+1])          (llama.cpp's LLAMA_ROPE_TYPE_NORM)
  NeoX,      // rotate (x[i], x[i + n_rot/2])    (llama.cpp's LLAMA_ROPE_TYPE_NEOX)
};

// What differs from layer to layer.
struct LayerSpec {
  int64_t sliding_window = 0;  // 0: attends to every earlier position; w > 0: only to positions p' > p - w
  double rope_freq_base = 10000.0;
  double rope_freq_scale = 1.0;  // theta is multiplied by this (linear RoPE scaling; sliding layers keep 1)
};

// The feature switches of the layer above (every layer has the same switches; the per-layer values are in
// LayerSpec). Defaults describe llama.
struct ModelFeatures {
  NormKind norm = NormKind::RMS;
  GatedAct act = GatedAct::SiLU;
  RopeStyle rope = RopeStyle::Adjacent;
  bool qkv_bias = false;        // bq, bk, bv present
  bool o_bias = false;          // bo present
  bool qk_norm = false;         // per-head Q/K norms over head_dim, before RoPE
  bool post_attn_norm = false;  // norm after the output projection, before the residual add
  bool post_ffn_norm = false;   // norm after ffn_down, before the residual add
  bool rope_freq_factors = false;  // rope_freqs tensor: theta_i is divided by factor[i], i < n_rot / 2
  double rope_attn_factor = 1.0;   // cos and sin are multiplied by this (rope.scaling.attn_factor, LongRoPE)
  double embd_scale = 1.0;         // token embeddings are multiplied by this (gemma: sqrt(n_embd))
  double attn_scale = 0;           // softmax scale; set at load (usually 1 / sqrt(head_dim))
  double final_logit_softcap = 0;  // 0: none
};

// The names of the features other than llama's that `f` uses, for a backend's "not supported" error and logs.
std::vector<std::string> features_in_use(const ModelFeatures& f, const std::vector<LayerSpec>& layers);

}  // namespace minnow
