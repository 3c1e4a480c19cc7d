#include "backend/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#if defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#endif

#include "quant/quant_ref.h"

namespace minnow {

void rmsnorm_row(const float* x, const float* w, float* y, int64_t n, float eps) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
}

void rope_cos_sin(int32_t pos, int64_t n_rot, double freq_base, double freq_scale, float* cs) {
  rope_cos_sin(pos, n_rot, freq_base, freq_scale, nullptr, cs);
}

void rope_cos_sin(int32_t pos, int64_t n_rot, double freq_base, double freq_scale, const float* factors, float* cs,
                  float mscale) {
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    double theta =
        static_cast<double>(pos) * freq_scale * std::pow(freq_base, -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
    if (factors) theta /= static_cast<double>(factors[i]);
    cs[2 * i] = static_cast<float>(std::cos(theta)) * mscale;
    cs[2 * i + 1] = static_cast<float>(std::sin(theta)) * mscale;
  }
}

void rope_apply(float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, const float* cs, RopeMode mode) {
  const int64_t half = n_rot / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t i = 0; i < half; ++i) {
      const float c = cs[2 * i], s = cs[2 * i + 1];
      const int64_t a = mode == RopeMode::Normal ? 2 * i : i;
      const int64_t b = mode == RopeMode::Normal ? 2 * i + 1 : i + half;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * c - x1 * s;
      v[b] = x0 * s + x1 * c;
    }
  }
}

void softmax_row(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu_row(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void geglu_tanh_row(const float* gate, const float* up, float* out, int64_t n) {
  constexpr float kSqrt2OverPi = 0.79788456080286535588f, kA = 0.044715f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + std::tanh(kSqrt2OverPi * g * (1.0f + kA * g * g))) * up[i];
  }
}

void add_row(float* x, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += b[i];
}

void softcap_row(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

const float* f16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t i = 0; i < 65536; ++i) t[i] = fp16_to_fp32(static_cast<uint16_t>(i));
    return t;
  }();
  return table.data();
}

float f16_to_f32_fast(uint16_t h) { return f16_table()[h]; }

namespace {

// dot(q[n], f16 k[n]) and out[n] += p * f16 v[n]. Vector paths when the build targets F16C/AVX-512; the
// operation order is fixed for a given build, so results never depend on the batch.
inline float dot_f32_f16(const float* q, const uint16_t* k, int64_t n, const float* t) {
  int64_t d = 0;
  float acc = 0;
#if defined(__AVX512F__)
  __m512 v = _mm512_setzero_ps();
  for (; d + 16 <= n; d += 16)
    v = _mm512_fmadd_ps(_mm512_loadu_ps(q + d),
                        _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + d))), v);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  for (int i = 0; i < 16; ++i) acc += lanes[i];
#elif defined(__F16C__) && defined(__FMA__)
  __m256 v = _mm256_setzero_ps();
  for (; d + 8 <= n; d += 8)
    v = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + d))), v);
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s4 = _mm_hadd_ps(s4, s4);
  s4 = _mm_hadd_ps(s4, s4);
  acc = _mm_cvtss_f32(s4);
#endif
  for (; d < n; ++d) acc += q[d] * t[k[d]];
  return acc;
}

inline void axpy_f16(float p, const uint16_t* v, float* out, int64_t n, const float* t) {
  int64_t d = 0;
#if defined(__AVX512F__)
  const __m512 pv = _mm512_set1_ps(p);
  for (; d + 16 <= n; d += 16)
    _mm512_storeu_ps(out + d, _mm512_fmadd_ps(pv, _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + d))),
                                              _mm512_loadu_ps(out + d)));
#elif defined(__F16C__) && defined(__FMA__)
  const __m256 pv = _mm256_set1_ps(p);
  for (; d + 8 <= n; d += 8)
    _mm256_storeu_ps(out + d, _mm256_fmadd_ps(pv, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + d))),
                                              _mm256_loadu_ps(out + d)));
#endif
  for (; d < n; ++d) out[d] += p * t[v[d]];
}

#if defined(__AVX512F__)
// GCC 12 reports its own intrinsics' deliberately undefined pass-through operands as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Lane j of the results = r[j][i]: a 16 x 16 transpose (r[j] becomes column j).
inline void transpose16(__m512* r) {
  __m512 a[16], c[16];
  for (int j = 0; j < 16; j += 2) {
    a[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
    a[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // rows 4g..4g+3: c[4g+k] holds element 4m+k of those rows in 128-bit block m
    const __m512d lo01 = _mm512_castps_pd(a[4 * g]), hi01 = _mm512_castps_pd(a[4 * g + 1]);
    const __m512d lo23 = _mm512_castps_pd(a[4 * g + 2]), hi23 = _mm512_castps_pd(a[4 * g + 3]);
    c[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo01, lo23));
    c[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo01, lo23));
    c[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi01, hi23));
    c[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi01, hi23));
  }
  for (int k = 0; k < 4; ++k) {  // 4 x 4 transpose of 128-bit blocks
    const __m512 a01 = _mm512_shuffle_f32x4(c[k], c[4 + k], 0x44), b01 = _mm512_shuffle_f32x4(c[k], c[4 + k], 0xEE);
    const __m512 a23 = _mm512_shuffle_f32x4(c[8 + k], c[12 + k], 0x44), b23 = _mm512_shuffle_f32x4(c[8 + k], c[12 + k], 0xEE);
    r[k] = _mm512_shuffle_f32x4(a01, a23, 0x88);
    r[4 + k] = _mm512_shuffle_f32x4(a01, a23, 0xDD);
    r[8 + k] = _mm512_shuffle_f32x4(b01, b23, 0x88);
    r[12 + k] = _mm512_shuffle_f32x4(b01, b23, 0xDD);
  }
}

// attention_head for head_dim = 16 * NV, same operations in the same order as the generic path (so the
// same bits): 16 scores at a time (their lane sums through a transpose), the output kept in registers.
template <int NV>
void attention_head_v(const float* q, const uint16_t* K, const uint16_t* V, int64_t n_kv, int64_t kv_stride,
                      float scale, float* scores, float* out, const float* t) {
  __m512 qv[NV];
  for (int i = 0; i < NV; ++i) qv[i] = _mm512_loadu_ps(q + 16 * i);
  int64_t j = 0;
  for (; j + 16 <= n_kv; j += 16) {
    __m512 r[16];
    for (int u = 0; u < 16; ++u) {
      const uint16_t* k = K + (j + u) * kv_stride;
      __m512 v = _mm512_setzero_ps();
      for (int i = 0; i < NV; ++i)
        v = _mm512_fmadd_ps(qv[i], _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(k + 16 * i))), v);
      r[u] = v;
    }
    transpose16(r);
    __m512 s = _mm512_setzero_ps();
    for (int i = 0; i < 16; ++i) s = _mm512_add_ps(s, r[i]);
    _mm512_storeu_ps(scores + j, _mm512_mul_ps(s, _mm512_set1_ps(scale)));
  }
  for (; j < n_kv; ++j) scores[j] = dot_f32_f16(q, K + j * kv_stride, 16 * NV, t) * scale;
  softmax_row(scores, n_kv);
  __m512 o[NV];
  for (int i = 0; i < NV; ++i) o[i] = _mm512_setzero_ps();
  for (j = 0; j < n_kv; ++j) {
    const __m512 p = _mm512_set1_ps(scores[j]);
    const uint16_t* v = V + j * kv_stride;
    for (int i = 0; i < NV; ++i)
      o[i] = _mm512_fmadd_ps(p, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + 16 * i))), o[i]);
  }
  for (int i = 0; i < NV; ++i) _mm512_storeu_ps(out + 16 * i, o[i]);
}
#pragma GCC diagnostic pop
#endif

}  // namespace

void attention_head(const float* q, const uint16_t* K, const uint16_t* V, int64_t n_kv, int64_t head_dim,
                    int64_t kv_stride, float scale, float* scores, float* out) {
  const float* t = f16_table();
#if defined(__AVX512F__)
  if (head_dim == 64) return attention_head_v<4>(q, K, V, n_kv, kv_stride, scale, scores, out, t);
  if (head_dim == 128) return attention_head_v<8>(q, K, V, n_kv, kv_stride, scale, scores, out, t);
#endif
  for (int64_t j = 0; j < n_kv; ++j) scores[j] = dot_f32_f16(q, K + j * kv_stride, head_dim, t) * scale;
  softmax_row(scores, n_kv);
  for (int64_t d = 0; d < head_dim; ++d) out[d] = 0;
  for (int64_t j = 0; j < n_kv; ++j) axpy_f16(scores[j], V + j * kv_stride, out, head_dim, t);
}

}  // namespace minnow
