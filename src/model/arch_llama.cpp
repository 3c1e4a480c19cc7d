// llama (Llama 1/2/3.x, TinyLlama, SmolLM2, Mistral-style files): the canonical layer with no extras.
//   keys:    the common ones (model_params.cpp); rope.scaling.{type,factor} (none or linear)
//   tensors: token_embd, output_norm, output (optional: tied), rope_freqs [n_rot/2] (optional: Llama 3.1/3.2
//            RoPE scaling; the factors divide the rotation frequencies);
//            blk.L.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down},
//            optional blk.L.attn_{q,k,v,output}.bias; blk.L.attn_rot_embd (legacy, ignored as llama.cpp does)
//   quirks:  RoPE on adjacent pairs (llama.cpp's NORM type)
#include "gguf/gguf_file.h"
#include "model/arch.h"

namespace minnow {

namespace {

void read_params(const MetaReader& meta, ModelParams& p) {
  p.features.rope = RopeStyle::Adjacent;
  read_bias_features(meta, p);
  p.features.rope_freq_factors = meta.file().find_tensor("rope_freqs.weight") != nullptr;
}

void load_tensors(TensorTable& t, const ModelParams& p, Model& m) {
  load_embeddings_and_output(t, p, m);
  if (p.features.rope_freq_factors) m.rope_freqs = t.get("rope_freqs.weight", p.n_rot / 2, 0, true);
  m.layers.resize(static_cast<size_t>(p.n_layer));
  for (int64_t l = 0; l < p.n_layer; ++l) {
    LayerWeights& L = m.layers[static_cast<size_t>(l)];
    load_attention(t, p, l, L);
    load_ffn(t, p, l, L);
    t.ignore(blk(l) + "attn_rot_embd");
  }
}

}  // namespace

const ArchDesc kArchLlama = {"llama", read_params, load_tensors};

}  // namespace minnow
