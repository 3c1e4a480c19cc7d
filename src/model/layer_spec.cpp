#include "model/layer_spec.h"

namespace minnow {

std::vector<std::string> features_in_use(const ModelFeatures& f, const std::vector<LayerSpec>& layers) {
  std::vector<std::string> out;
  if (f.act == GatedAct::GeluTanh) out.push_back("gelu_tanh activation");
  if (f.rope == RopeStyle::NeoX) out.push_back("neox rope");
  if (f.qkv_bias) out.push_back("qkv bias");
  if (f.o_bias) out.push_back("output-projection bias");
  if (f.qk_norm) out.push_back("q/k norm");
  if (f.post_attn_norm) out.push_back("post-attention norm");
  if (f.post_ffn_norm) out.push_back("post-ffn norm");
  if (f.rope_freq_factors) out.push_back("rope frequency factors");
  if (f.rope_attn_factor != 1.0) out.push_back("rope attention factor");
  if (f.embd_scale != 1.0) out.push_back("embedding scale");
  if (f.final_logit_softcap != 0) out.push_back("final logit soft-cap");
  bool swa = false, per_layer_base = false;
  for (const auto& l : layers) {
    swa = swa || l.sliding_window > 0;
    per_layer_base = per_layer_base || (!layers.empty() && l.rope_freq_base != layers[0].rope_freq_base);
  }
  if (swa) out.push_back("sliding-window attention");
  if (per_layer_base) out.push_back("per-layer rope base");
  return out;
}

}  // namespace minnow
