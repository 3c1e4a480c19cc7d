// phi3 (Phi-3, Phi-3.5 mini/medium): llama's layer with fused projections and NeoX RoPE.
//   keys:    the common ones; rope.dimension_count may be below the head size (partial rotary);
//            attention.sliding_window is ignored, as llama.cpp does (its Phi-3 SWA is disabled)
//   tensors: token_embd, output_norm, output (optional: tied);
//            blk.L.{attn_norm, attn_qkv [n_embd, q_dim + 2 k_dim] ([Q; K; V] rows) or separate
//            attn_q/attn_k/attn_v, attn_output, ffn_norm, ffn_up [n_embd, 2 n_ff] (gate rows first, then up),
//            ffn_down}. Fused tensors become row views in attn_q/k/v and ffn_gate/ffn_up: backends never see
//            fusion.
//            rope_factors_short / rope_factors_long [n_rot/2] (optional, LongRoPE: Phi-3 128k): the short ones
//            apply up to rope.scaling.original_context_length, the long ones when the context is larger
//            (llama.cpp chooses by the context size); rope.scaling.attn_factor scales cos and sin
//   quirks:  NeoX RoPE
#include "common/error.h"
#include "gguf/gguf_file.h"
#include "model/arch.h"

namespace minnow {

namespace {

void read_params(const MetaReader& meta, ModelParams& p) {
  p.features.rope = RopeStyle::NeoX;
  read_bias_features(meta, p);
  const GgufFile& f = meta.file();
  const bool lng = f.find_tensor("rope_factors_long.weight") != nullptr;
  const bool shrt = f.find_tensor("rope_factors_short.weight") != nullptr;
  if (lng != shrt) throw Error("phi3: rope_factors_long.weight and rope_factors_short.weight come together");
  p.features.rope_freq_factors = lng;
}

void load_tensors(TensorTable& t, const ModelParams& p, Model& m) {
  load_embeddings_and_output(t, p, m);
  if (p.features.rope_freq_factors) {
    m.rope_freqs = t.get("rope_factors_short.weight", p.n_rot / 2, 0, true);
    m.rope_freqs_long = t.get("rope_factors_long.weight", p.n_rot / 2, 0, true);
  }
  m.layers.resize(static_cast<size_t>(p.n_layer));
  for (int64_t l = 0; l < p.n_layer; ++l) {
    LayerWeights& L = m.layers[static_cast<size_t>(l)];
    const std::string b = blk(l);
    if (t.has(b + "attn_qkv.weight")) {
      L.attn_norm = t.get(b + "attn_norm.weight", p.n_embd, 0, true);
      const WeightView qkv = t.get(b + "attn_qkv.weight", p.n_embd, p.q_dim() + p.k_dim() + p.v_dim());
      L.attn_q = row_view(qkv, 0, p.q_dim(), b + "attn_q (view of attn_qkv)");
      L.attn_k = row_view(qkv, p.q_dim(), p.k_dim(), b + "attn_k (view of attn_qkv)");
      L.attn_v = row_view(qkv, p.q_dim() + p.k_dim(), p.v_dim(), b + "attn_v (view of attn_qkv)");
      L.attn_output = t.get(b + "attn_output.weight", p.n_head * p.head_dim_v, p.n_embd);
      if (p.features.qkv_bias || p.features.o_bias)
        throw Error("tensor " + b + "attn_qkv.weight: biases with a fused QKV are not supported");
    } else {
      load_attention(t, p, l, L);
    }
    L.ffn_norm = t.get(b + "ffn_norm.weight", p.n_embd, 0, true);
    const WeightView up = t.get(b + "ffn_up.weight", p.n_embd, 2 * p.n_ff);
    L.ffn_gate = row_view(up, 0, p.n_ff, b + "ffn_gate (view of ffn_up)");
    L.ffn_up = row_view(up, p.n_ff, p.n_ff, b + "ffn_up (view of ffn_up)");
    L.ffn_down = t.get(b + "ffn_down.weight", p.n_ff, p.n_embd);
  }
}

}  // namespace

const ArchDesc kArchPhi3 = {"phi3", read_params, load_tensors};

}  // namespace minnow
