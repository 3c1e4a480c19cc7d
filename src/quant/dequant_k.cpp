// Decoders of the 256-element K-quant super-blocks Q2_K .. Q6_K (ggml's formulas, float arithmetic).
#include <cstring>

#include "quant/blocks.h"
#include "quant/quant_impl.h"
#include "quant/quant_ref.h"

namespace minnow::qimpl {

// Element 128*h + 32*s + l (h: half, s: shift step 0..3, l: 0..31) is bits 2s..2s+1 of qs[32*h + l];
// sub-block (16 elements) k uses scales[k].
void dequant_q2_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    auto b = load<BlockQ2_K>(src, i);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < kQKK; ++e) {
      const int h = e / 128, s = (e % 128) / 32, l = e % 32;
      const uint8_t sc = b.scales[e / 16];
      const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
      const int q = (b.qs[32 * h + l] >> (2 * s)) & 3;
      y[e] = dl * static_cast<float>(q) - ml;
    }
  }
}

// Same 2-bit order as Q2_K; the third bit of element 32*b + l is bit b of hmask[l]; a clear bit subtracts 4.
void dequant_q3_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    auto b = load<BlockQ3_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    int8_t sc[16];
    q3k_scales(b.scales, sc);
    for (int e = 0; e < kQKK; ++e) {
      const int h = e / 128, s = (e % 128) / 32, l = e % 32;
      const float dl = d * static_cast<float>(sc[e / 16] - 32);
      const int low = (b.qs[32 * h + l] >> (2 * s)) & 3;
      const int high = (b.hmask[l] >> (e / 32)) & 1;
      y[e] = dl * static_cast<float>(low - (high ? 0 : 4));
    }
  }
}

namespace {
// Scales and mins of sub-blocks 2c and 2c + 1 of a Q4_K / Q5_K super-block (element = d_k * q - m_k).
struct K4Pair {
  float d1, m1, d2, m2;
};
K4Pair k4_pair(const uint8_t scales[12], float d, float dmin, int c) {
  uint8_t sc, m;
  K4Pair p;
  k4_scale_min(2 * c, scales, &sc, &m);
  p.d1 = d * sc;
  p.m1 = dmin * m;
  k4_scale_min(2 * c + 1, scales, &sc, &m);
  p.d2 = d * sc;
  p.m2 = dmin * m;
  return p;
}
}  // namespace

// Each 64-element chunk c: elements 64c+l use the low nibble of qs[32c+l] (sub-block 2c), elements 64c+32+l
// the high nibble (sub-block 2c+1).
void dequant_q4_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    auto b = load<BlockQ4_K>(src, i);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int c = 0; c < 4; ++c) {
      const K4Pair p = k4_pair(b.scales, d, dmin, c);
      for (int l = 0; l < 32; ++l) {
        y[64 * c + l] = p.d1 * static_cast<float>(b.qs[32 * c + l] & 0xF) - p.m1;
        y[64 * c + 32 + l] = p.d2 * static_cast<float>(b.qs[32 * c + l] >> 4) - p.m2;
      }
    }
  }
}

// As Q4_K; the fifth bit of element 64c+l is bit 2c of qh[l], of element 64c+32+l bit 2c+1.
void dequant_q5_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    auto b = load<BlockQ5_K>(src, i);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int c = 0; c < 4; ++c) {
      const K4Pair p = k4_pair(b.scales, d, dmin, c);
      for (int l = 0; l < 32; ++l) {
        const int q1 = (b.qs[32 * c + l] & 0xF) | (((b.qh[l] >> (2 * c)) & 1) << 4);
        const int q2 = (b.qs[32 * c + l] >> 4) | (((b.qh[l] >> (2 * c + 1)) & 1) << 4);
        y[64 * c + l] = p.d1 * static_cast<float>(q1) - p.m1;
        y[64 * c + 32 + l] = p.d2 * static_cast<float>(q2) - p.m2;
      }
    }
  }
}

// Per 128-element half h, for l in 0..31: ql[64h+l] holds elements l (low) and l+64 (high nibble),
// ql[64h+32+l] holds l+32 and l+96; qh[32h+l] holds the 2 high bits of l, l+32, l+64, l+96 (in that order).
void dequant_q6_k(const uint8_t* src, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQKK) {
    auto b = load<BlockQ6_K>(src, i);
    const float d = fp16_to_fp32(b.d);
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      const int8_t* sc = b.scales + 8 * h;
      float* yh = y + 128 * h;
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        yh[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        yh[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        yh[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        yh[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

}  // namespace minnow::qimpl
