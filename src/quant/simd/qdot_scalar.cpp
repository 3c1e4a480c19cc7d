// Scalar integer kernels: the canonical arithmetic of qdot.h written plainly. Also the oracle the SIMD
// kernels must match bit for bit.
#include "quant/simd/qdot.h"
#include "quant/simd/qunpack.h"

namespace minnow {

namespace {

template <class B>
void ktile(const uint8_t* W, size_t row_stride, int64_t n_rows, const ActQ& a, int64_t t0, int64_t n_tok,
           float* y, int64_t ldy) {
  float acc[kQTileMaxTok];
  uint8_t q[256];
  KScales s;
  for (int64_t r = 0; r < n_rows; ++r) {
    const B* blocks = reinterpret_cast<const B*>(W + static_cast<size_t>(r) * row_stride);
    for (int64_t t = 0; t < n_tok; ++t) acc[t] = 0.0f;
    for (int64_t b = 0; b < a.nb; ++b) {
      kquants(&blocks[b], q);
      kscales(&blocks[b], &s);
      for (int64_t t = 0; t < n_tok; ++t) {
        const int64_t tok = t0 + t;
        const int8_t* x = a.qs + tok * a.n_in + b * 256;
        const int16_t* bs = a.bsum16 + (tok * a.nb + b) * 16;
        int32_t sumi = 0, sumx = 0;
        for (int g = 0; g < 16; ++g) {
          int32_t dot = 0;
          for (int i = 0; i < 16; ++i) dot += q[16 * g + i] * x[16 * g + i];
          sumi += s.sc16[g] * dot + s.off16[g] * bs[g];
          sumx += s.min16[g] * bs[g];
        }
        const float dx = a.d[b * a.n_tok + tok];
        acc[t] = canon_step(acc[t], s.dw, dx, sumi);
        if (s.has_min) acc[t] = canon_step(acc[t], s.mw, dx, sumx);
      }
    }
    for (int64_t t = 0; t < n_tok; ++t) y[t * ldy + r] = acc[t];
  }
}

template <class B>
void ltile(const uint8_t* W, size_t row_stride, int64_t n_rows, const ActQ& a, int64_t t0, int64_t n_tok,
           float* y, int64_t ldy) {
  float acc[kQTileMaxTok];
  LBlock lb;
  for (int64_t r = 0; r < n_rows; ++r) {
    const B* blocks = reinterpret_cast<const B*>(W + static_cast<size_t>(r) * row_stride);
    for (int64_t t = 0; t < n_tok; ++t) acc[t] = 0.0f;
    for (int64_t b = 0; b < a.nb; ++b) {
      lunpack(&blocks[b], &lb);
      for (int64_t t = 0; t < n_tok; ++t) {
        const int64_t tok = t0 + t;
        const int8_t* x = a.qs + tok * a.n_in + b * 32;
        const int32_t sx = a.sum[b * a.n_tok + tok];
        int32_t sumi = 0;
        for (int i = 0; i < 32; ++i) sumi += lb.q[i] * x[i];
        sumi += lb.off * sx;
        const float dx = a.d[b * a.n_tok + tok];
        acc[t] = canon_step(acc[t], lb.dw, dx, sumi);
        if (lb.has_min) acc[t] = canon_step(acc[t], lb.mw, dx, sx);
      }
    }
    for (int64_t t = 0; t < n_tok; ++t) y[t * ldy + r] = acc[t];
  }
}

}  // namespace

QTileFn qtile_scalar(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0: return ltile<BlockQ4_0>;
    case GgmlType::Q4_1: return ltile<BlockQ4_1>;
    case GgmlType::Q5_0: return ltile<BlockQ5_0>;
    case GgmlType::Q5_1: return ltile<BlockQ5_1>;
    case GgmlType::Q8_0: return ltile<BlockQ8_0>;
    case GgmlType::Q2_K: return ktile<BlockQ2_K>;
    case GgmlType::Q3_K: return ktile<BlockQ3_K>;
    case GgmlType::Q4_K: return ktile<BlockQ4_K>;
    case GgmlType::Q5_K: return ktile<BlockQ5_K>;
    case GgmlType::Q6_K: return ktile<BlockQ6_K>;
    default: return nullptr;
  }
}

}  // namespace minnow
