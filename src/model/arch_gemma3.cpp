// gemma3 (Gemma 3 text models, 270M … 27B).
//   keys:    the common ones; attention.sliding_window (absent or 0: no sliding layers);
//            attention.sliding_window_pattern (default 6, as llama.cpp: layer l slides unless
//            l % pattern == pattern - 1; real files omit the key); rope.freq_base_swa (default 1e4: the
//            sliding layers' base, theirs unscaled); final_logit_softcapping (default none)
//   tensors: token_embd, output_norm, output (optional: tied — it then uses the embeddings *unscaled*);
//            blk.L.{attn_norm, attn_q, attn_k, attn_v, attn_output, attn_q_norm, attn_k_norm,
//            post_attention_norm, ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffw_norm}
//   quirks:  embeddings × sqrt(n_embd); GELU(tanh)-gated FFN; post-attention and post-FFN norms; Q/K norms;
//            norm weights stored with Gemma's +1 already added (used as stored); NeoX RoPE; attention scale
//            1/sqrt(head_dim) (the 27B, 62 layers: 1/sqrt(n_embd / n_head), per llama.cpp);
//            a sliding layer at position p sees positions p' with p - p' < window.
#include <cmath>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "model/arch.h"

namespace minnow {

namespace {

void read_params(const MetaReader& meta, ModelParams& p) {
  ModelFeatures& f = p.features;
  f.rope = RopeStyle::NeoX;
  f.act = GatedAct::GeluTanh;
  f.qk_norm = true;
  f.post_attn_norm = true;
  f.post_ffn_norm = true;
  f.embd_scale = std::sqrt(static_cast<double>(p.n_embd));
  if (p.n_layer == 62) f.attn_scale = 1.0 / std::sqrt(static_cast<double>(p.n_embd / p.n_head));
  if (auto c = meta.opt_float("final_logit_softcapping")) {
    if (!(*c >= 0) || !std::isfinite(*c)) throw Error("metadata " + meta.prefix() + "final_logit_softcapping must be >= 0");
    f.final_logit_softcap = *c;
  }
  const auto window = meta.file().get_int(meta.prefix() + "attention.sliding_window");
  if (window && *window > 0) {
    const int64_t w = meta.req_int("attention.sliding_window");
    int64_t pattern = 6;
    if (meta.file().get_int(meta.prefix() + "attention.sliding_window_pattern"))
      pattern = meta.file().require_int(meta.prefix() + "attention.sliding_window_pattern");
    if (pattern < 0 || pattern > (int64_t{1} << 20))
      throw Error("metadata " + meta.prefix() + "attention.sliding_window_pattern is out of range");
    const double base_swa = meta.positive_float("rope.freq_base_swa", 10000.0);
    for (int64_t l = 0; l < p.n_layer; ++l) {
      const bool sliding = pattern == 0 || l % pattern < pattern - 1;
      if (sliding) p.layer[static_cast<size_t>(l)] = LayerSpec{w, base_swa, 1.0};
    }
  }
}

void load_tensors(TensorTable& t, const ModelParams& p, Model& m) {
  load_embeddings_and_output(t, p, m);
  m.layers.resize(static_cast<size_t>(p.n_layer));
  for (int64_t l = 0; l < p.n_layer; ++l) {
    LayerWeights& L = m.layers[static_cast<size_t>(l)];
    const std::string b = blk(l);
    load_attention(t, p, l, L);
    load_qk_norm(t, p, l, L);
    L.post_attn_norm = t.get(b + "post_attention_norm.weight", p.n_embd, 0, true);
    load_ffn(t, p, l, L);
    L.post_ffn_norm = t.get(b + "post_ffw_norm.weight", p.n_embd, 0, true);
  }
}

}  // namespace

const ArchDesc kArchGemma3 = {"gemma3", read_params, load_tensors};

}  // namespace minnow
