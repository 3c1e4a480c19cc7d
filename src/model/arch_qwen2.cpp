// qwen2 (Qwen2, Qwen2.5): llama's layer with Q/K/V biases and NeoX RoPE.
//   keys:    the common ones (model_params.cpp); rope.freq_base is large (1e6)
//   tensors: as llama, plus blk.L.attn_{q,k,v}.bias (llama.cpp loads them as optional; so do we);
//            output (optional: tied)
//   quirks:  NeoX RoPE (rotating halves) — llama.cpp picks the RoPE type from the architecture, not the file
#include "model/arch.h"

namespace minnow {

namespace {

void read_params(const MetaReader& meta, ModelParams& p) {
  p.features.rope = RopeStyle::NeoX;
  read_bias_features(meta, p);
}

void load_tensors(TensorTable& t, const ModelParams& p, Model& m) {
  load_embeddings_and_output(t, p, m);
  m.layers.resize(static_cast<size_t>(p.n_layer));
  for (int64_t l = 0; l < p.n_layer; ++l) {
    LayerWeights& L = m.layers[static_cast<size_t>(l)];
    load_attention(t, p, l, L);
    load_ffn(t, p, l, L);
  }
}

}  // namespace

const ArchDesc kArchQwen2 = {"qwen2", read_params, load_tensors};

}  // namespace minnow
