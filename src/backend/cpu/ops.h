#pragma once
// The CPU forward pass's element-wise and attention ops (everything except the matrix products).
// Each has a plain double-precision reference in ops_ref.h that the unit tests compare against.
// Every op works on one row / one token so results never depend on batch composition.
#include <cstdint>

namespace minnow {

enum class RopeMode {
  Normal,  // llama.cpp mode 0 (GGUF llama): rotate adjacent pairs (x[2i], x[2i+1])
  NeoX,    // llama.cpp mode 2: rotate (x[i], x[i + n_rot/2])
};

// y[n] = x[n] / sqrt(mean(x^2) + eps) * w[n]   (y may alias x)
void rmsnorm_row(const float* x, const float* w, float* y, int64_t n, float eps);

// cs[n_rot] = interleaved (cos, sin) of theta_i = pos * freq_scale * freq_base^(-2i/n_rot), i < n_rot/2.
void rope_cos_sin(int32_t pos, int64_t n_rot, double freq_base, double freq_scale, float* cs);
// As above with per-pair frequency factors (Llama 3.1 RoPE scaling): theta_i is divided by factors[i]
// (factors[n_rot/2]; nullptr: all 1).
// mscale multiplies cos and sin (the RoPE attention factor).
void rope_cos_sin(int32_t pos, int64_t n_rot, double freq_base, double freq_scale, const float* factors, float* cs,
                  float mscale = 1.0f);
// Rotates the first n_rot dims of each of n_heads heads in x[n_heads][head_dim] in place.
void rope_apply(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cs, RopeMode mode);

// x[n] <- softmax(x) (max-subtracted)
void softmax_row(float* x, int64_t n);

// out[n] = silu(gate[n]) * up[n]   (out may alias gate or up)
void swiglu_row(const float* gate, const float* up, float* out, int64_t n);

// out[n] = gelu_tanh(gate[n]) * up[n], gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
// (out may alias gate or up)
void geglu_tanh_row(const float* gate, const float* up, float* out, int64_t n);

// x[n] += b[n]
void add_row(float* x, const float* b, int64_t n);

// x[n] <- cap * tanh(x / cap)   (final logit soft-cap)
void softcap_row(float* x, int64_t n, float cap);

// float of an IEEE half (table lookup)
float f16_to_f32_fast(uint16_t h);
const float* f16_table();  // [65536]

// One query head attending over n_kv cached positions (causal range already applied by the caller).
// q[head_dim]; K, V: n_kv rows of F16, row j at K + j * kv_stride (elements); scores: scratch [n_kv];
// out[head_dim] = sum_j softmax(scale * q.K_j)_j * V_j.
void attention_head(const float* q, const uint16_t* K, const uint16_t* V, int64_t n_kv, int64_t head_dim,
                    int64_t kv_stride, float scale, float* scores, float* out);

}  // namespace minnow
