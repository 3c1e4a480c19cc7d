// CudaBackend's layer features (model/layer_spec.h) beyond llama's, shared by the decode and prefill paths:
// which fusions the description allows (setup_features), the embedding scale, the unfused QKV epilogue
// (biases, Q/K norms, NeoX / partial / factored / per-layer RoPE), the residual add with an output bias or a
// post-norm, and the logit soft-cap. A llama description keeps fused_qkv_ and none of the extra kernels, so
// its passes are exactly the fused ones.
#include <cuda_runtime.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"
#include "model/layer_spec.h"

namespace minnow::cuda_impl {

void CudaBackend::setup_features(const Model& model) {
  const ModelFeatures& f = p_.features;
  const int L = int(p_.n_layer);
  // Per-layer values (the description's LayerSpec; a model without them uses the global base, no window).
  window_.assign(size_t(L), 0);
  layer_base_.assign(size_t(L), float(p_.rope_freq_base));
  std::vector<double> base(size_t(L), p_.rope_freq_base);
  if (!p_.layer.empty()) {
    if (p_.layer.size() != size_t(L)) throw Error("cuda: the layer description has the wrong number of layers");
    for (int l = 0; l < L; ++l) {
      const LayerSpec& s = p_.layer[size_t(l)];
      if (s.sliding_window < 0 || s.sliding_window > (int64_t(1) << 30))
        throw Error("cuda: layer " + std::to_string(l) + ": bad sliding window");
      window_[size_t(l)] = int(s.sliding_window);
      base[size_t(l)] = s.rope_freq_base;
      layer_base_[size_t(l)] = float(s.rope_freq_base);
    }
  }
  if (f.norm != NormKind::RMS) throw Error("cuda: this norm kind is not supported");
  // Refused until the kernels compute them (the CPU backend does): cos/sin scaled by an attention factor, a
  // per-layer linear RoPE scale, and LongRoPE's long factors (chosen when the context exceeds n_ctx_orig).
  if (f.rope_attn_factor != 1.0) throw Error("cuda: feature not supported: rope attention factor (LongRoPE)");
  for (const LayerSpec& s : p_.layer)
    if (s.rope_freq_scale != p_.rope_freq_scale)
      throw Error("cuda: feature not supported: per-layer linear rope scale");
  if (model.rope_freqs_long.data && n_ctx_ > p_.n_ctx_orig)
    throw Error("cuda: feature not supported: long rope factors (LongRoPE beyond the original context; use -c " +
                std::to_string(p_.n_ctx_orig) + " or less)");
  bool one_base = true;
  for (double b : base) one_base = one_base && b == p_.rope_freq_base;
  if (f.rope_freq_factors && !w_->rope_freqs) throw Error("cuda: rope frequency factors announced but no rope_freqs");
  fused_qkv_ = !f.qkv_bias && !f.qk_norm && f.rope == RopeStyle::Adjacent && !f.rope_freq_factors && one_base;
  for (const DevLayer& d : w_->layers) {
    if (f.qkv_bias && (!d.bq || !d.bk || !d.bv)) throw Error("cuda: qkv bias announced but a bias tensor is missing");
    if (f.o_bias && !d.bo) throw Error("cuda: output-projection bias announced but attn_output.bias is missing");
    if (f.qk_norm && (!d.q_norm || !d.k_norm)) throw Error("cuda: q/k norm announced but a norm tensor is missing");
    if (f.post_attn_norm && !d.post_attn_norm) throw Error("cuda: post-attention norm announced but missing");
    if (f.post_ffn_norm && !d.post_ffn_norm) throw Error("cuda: post-ffn norm announced but missing");
  }
  post_attn_ = f.o_bias || f.post_attn_norm;
  post_ffn_ = f.post_ffn_norm;
  act_ = f.act == GatedAct::GeluTanh ? cuda::Act::GeluTanh : cuda::Act::SiLU;
  // The default value stays the one the kernels always used (1 / sqrtf(head_dim) in float) unless the description
  // asks for another scale.
  const double default_scale = 1.0 / std::sqrt(double(p_.head_dim_k));
  attn_scale_ = 1.0f / std::sqrt(float(p_.head_dim_k));
  if (f.attn_scale > 0 && std::fabs(f.attn_scale - default_scale) > 1e-12 * default_scale) attn_scale_ = float(f.attn_scale);
  embd_scale_ = float(f.embd_scale);
  if (!(f.final_logit_softcap >= 0)) throw Error("cuda: bad final logit soft-cap");
  softcap_ = float(f.final_logit_softcap);
  if (!(f.embd_scale > 0)) throw Error("cuda: bad embedding scale");

  const size_t U = kUbatch;
  if (post_attn_ || post_ffn_) d_tmp_ = scratch<float>(U * size_t(p_.n_embd));
  // Angle tables of the unfused epilogue: one per distinct base (with the frequency factors), computed in double
  // once, when they fit in 64 MiB together; otherwise the kernel computes the angles.
  layer_rope_.assign(size_t(L), nullptr);
  if (!fused_qkv_) {
    const size_t floats = size_t(n_ctx_) * size_t(p_.n_rot / 2) * 2;
    std::map<double, const float*> tables;
    for (double b : base) tables[b] = nullptr;
    if (tables.size() * floats * sizeof(float) <= (size_t(64) << 20)) {
      const float* factors = f.rope_freq_factors ? model.rope_freqs.f32() : nullptr;
      std::vector<float> table(floats);
      for (auto& [b, d] : tables) {
        cuda::rope_table(n_ctx_, int(p_.n_rot), b, p_.rope_freq_scale, table.data(), factors);
        float* dt = scratch<float>(floats);
        check(cudaMemcpy(dt, table.data(), floats * sizeof(float), cudaMemcpyHostToDevice), "upload rope");
        d = dt;
      }
      for (int l = 0; l < L; ++l) layer_rope_[size_t(l)] = tables[base[size_t(l)]];
    }
  }
}

void CudaBackend::embed(int nt) {
  cuda::get_rows(w_->embd.type, w_->embd.d, int(p_.n_embd), d_tokens(), nt, d_x_, stream_);
  if (embd_scale_ != 1.f) cuda::scale(d_x_, int64_t(nt) * p_.n_embd, embd_scale_, stream_);
}

void CudaBackend::qkv_post(int layer, int nt, float* q, const float* k, const float* v, int ldq, int ldk, int ldv) {
  const DevLayer& L = w_->layers[size_t(layer)];
  cuda::QkvPostArgs a;
  a.d_q = q;
  a.d_k = k;
  a.d_v = v;
  a.ldq = ldq;
  a.ldk = ldk;
  a.ldv = ldv;
  a.d_pos = d_pos();
  a.d_seq = d_seq();
  a.n = nt;
  a.n_head = int(p_.n_head);
  a.n_head_kv = int(p_.n_head_kv);
  a.head_dim = int(p_.head_dim_k);
  a.n_rot = int(p_.n_rot);
  if (p_.features.qkv_bias) {
    a.d_bq = L.bq;
    a.d_bk = L.bk;
    a.d_bv = L.bv;
  }
  if (p_.features.qk_norm) {
    a.d_q_norm = L.q_norm;
    a.d_k_norm = L.k_norm;
  }
  a.eps = float(p_.rms_eps);
  a.neox = p_.features.rope == RopeStyle::NeoX;
  a.d_rope = layer_rope_[size_t(layer)];
  a.freq_base = layer_base_[size_t(layer)];
  a.freq_scale = float(p_.rope_freq_scale);
  a.d_factors = p_.features.rope_freq_factors ? w_->rope_freqs : nullptr;
  a.d_kcache = kv_->k(layer);
  a.d_vcache = kv_->v(layer);
  a.n_ctx = n_ctx_;
  cuda::qkv_post(a, stream_);
}

void CudaBackend::residual_post(const float* y, int ldy, const float* bias, const float* norm, int nt) {
  cuda::residual_post(d_x_, int(p_.n_embd), y, ldy, bias, norm, int(p_.n_embd), nt, float(p_.rms_eps), stream_);
}

void CudaBackend::cap_logits(int n_out) {
  if (softcap_ > 0.f) cuda::softcap(d_logits_, int64_t(n_out) * p_.n_vocab, softcap_, stream_);
}

}  // namespace minnow::cuda_impl
