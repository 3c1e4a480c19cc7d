// qwen3 (dense Qwen3): llama's layer with per-head Q/K RMSNorm and NeoX RoPE.
//   keys:    the common ones; head_dim comes from attention.key_length (128 in the real models while
//            n_embd / n_head differs), so q_dim = n_head * head_dim need not equal n_embd
//   tensors: as llama, plus blk.L.attn_q_norm / attn_k_norm [head_dim] (F32)
//   quirks:  Q/K norm (RMS over each head, eps = layer_norm_rms_epsilon) before RoPE; NeoX RoPE
#include "model/arch.h"

namespace minnow {

namespace {

void read_params(const MetaReader& meta, ModelParams& p) {
  p.features.rope = RopeStyle::NeoX;
  p.features.qk_norm = true;
  read_bias_features(meta, p);
}

void load_tensors(TensorTable& t, const ModelParams& p, Model& m) {
  load_embeddings_and_output(t, p, m);
  m.layers.resize(static_cast<size_t>(p.n_layer));
  for (int64_t l = 0; l < p.n_layer; ++l) {
    LayerWeights& L = m.layers[static_cast<size_t>(l)];
    load_attention(t, p, l, L);
    load_qk_norm(t, p, l, L);
    load_ffn(t, p, l, L);
  }
}

}  // namespace

const ArchDesc kArchQwen3 = {"qwen3", read_params, load_tensors};

}  // namespace minnow
