#pragma once
// Scalar decoding of one weight block into the canonical integer form used by every kernel (qdot.h):
// unsigned quants in natural element order plus small integer scales, so that
//   K-quants:  sumi = sum_g sc16[g] * (q[16g..16g+15] . x) + sum_g off16[g] * bsum16[g]
//              sumx = sum_g min16[g] * bsum16[g]
//   legacy:    sumi = q . x + off * sum(x)        (q signed for Q8_0), sumx = sum(x)
// Everything here has internal linkage: it is included by files compiled for different instruction sets.
#include <cstdint>
#include <cstring>

#include "quant/blocks.h"

namespace minnow {
namespace {

inline float unpack_half(uint16_t h) {
  // exact IEEE half -> float (same value as F16C's conversion)
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      float v = static_cast<float>(mant) * 5.9604644775390625e-08f;  // 2^-24, exact
      return sign ? -v : v;
    }
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The per-16-group integer scales of a K-quant super-block, and its float factors.
struct KScales {
  int16_t sc16[16];   // multiplies the group's q . x
  int16_t off16[16];  // multiplies the group's activation sum (folded into sumi)
  int16_t min16[16];  // multiplies the group's activation sum (sumx term)
  float dw = 0, mw = 0;
  bool has_off = false, has_min = false;
};

inline void kscales_q4k_like(const uint8_t* packed, uint16_t d, uint16_t dmin, KScales* s) {
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    k4_scale_min(j, packed, &sc, &m);
    s->sc16[2 * j] = s->sc16[2 * j + 1] = sc;
    s->min16[2 * j] = s->min16[2 * j + 1] = m;
    s->off16[2 * j] = s->off16[2 * j + 1] = 0;
  }
  s->dw = unpack_half(d);
  s->mw = -unpack_half(dmin);
  s->has_off = false;
  s->has_min = true;
}

inline void kscales(const BlockQ4_K* b, KScales* s) { kscales_q4k_like(b->scales, b->d, b->dmin, s); }
inline void kscales(const BlockQ5_K* b, KScales* s) { kscales_q4k_like(b->scales, b->d, b->dmin, s); }

inline void kscales(const BlockQ6_K* b, KScales* s) {
  for (int g = 0; g < 16; ++g) {
    s->sc16[g] = b->scales[g];
    s->off16[g] = static_cast<int16_t>(-32 * b->scales[g]);
    s->min16[g] = 0;
  }
  s->dw = unpack_half(b->d);
  s->mw = 0;
  s->has_off = true;
  s->has_min = false;
}

inline void kscales(const BlockQ3_K* b, KScales* s) {
  int8_t sc[16];
  q3k_scales(b->scales, sc);
  for (int g = 0; g < 16; ++g) {
    s->sc16[g] = static_cast<int16_t>(sc[g] - 32);
    s->off16[g] = static_cast<int16_t>(-4 * (sc[g] - 32));
    s->min16[g] = 0;
  }
  s->dw = unpack_half(b->d);
  s->mw = 0;
  s->has_off = true;
  s->has_min = false;
}

inline void kscales(const BlockQ2_K* b, KScales* s) {
  for (int g = 0; g < 16; ++g) {
    s->sc16[g] = b->scales[g] & 0xF;
    s->min16[g] = b->scales[g] >> 4;
    s->off16[g] = 0;
  }
  s->dw = unpack_half(b->d);
  s->mw = -unpack_half(b->dmin);
  s->has_off = false;
  s->has_min = true;
}

// Unsigned quants of a K-quant super-block in element order.
inline void kquants(const BlockQ4_K* b, uint8_t* q) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = b->qs[32 * c + l] & 0xF;
      q[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
    }
}
inline void kquants(const BlockQ5_K* b, uint8_t* q) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      q[64 * c + l] = static_cast<uint8_t>((b->qs[32 * c + l] & 0xF) | (((b->qh[l] >> (2 * c)) & 1) << 4));
      q[64 * c + 32 + l] = static_cast<uint8_t>((b->qs[32 * c + l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4));
    }
}
inline void kquants(const BlockQ6_K* b, uint8_t* q) {
  for (int n = 0; n < 2; ++n) {
    const uint8_t* ql = b->ql + 64 * n;
    const uint8_t* qh = b->qh + 32 * n;
    uint8_t* y = q + 128 * n;
    for (int l = 0; l < 32; ++l) {
      y[l] = static_cast<uint8_t>((ql[l] & 0xF) | ((qh[l] & 3) << 4));
      y[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
      y[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
      y[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
    }
  }
}
inline void kquants(const BlockQ3_K* b, uint8_t* q) {  // q + 4, in 0..7
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, s = (e % 128) / 32, l = e % 32;
    const int low = (b->qs[32 * h + l] >> (2 * s)) & 3;
    const int high = (b->hmask[l] >> (e / 32)) & 1;
    q[e] = static_cast<uint8_t>(low + (high ? 4 : 0));
  }
}
inline void kquants(const BlockQ2_K* b, uint8_t* q) {
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, s = (e % 128) / 32, l = e % 32;
    q[e] = static_cast<uint8_t>((b->qs[32 * h + l] >> (2 * s)) & 3);
  }
}

// Legacy blocks: quants (signed for Q8_0, else unsigned), the offset multiplying sum(x), float factors.
struct LBlock {
  int16_t q[32];
  int32_t off = 0;
  float dw = 0, mw = 0;
  bool has_min = false;
};

inline void lunpack(const BlockQ8_0* b, LBlock* o) {
  for (int i = 0; i < 32; ++i) o->q[i] = b->qs[i];
  o->off = 0;
  o->dw = unpack_half(b->d);
  o->has_min = false;
}
inline void lunpack(const BlockQ4_0* b, LBlock* o) {
  for (int i = 0; i < 16; ++i) {
    o->q[i] = b->qs[i] & 0xF;
    o->q[i + 16] = b->qs[i] >> 4;
  }
  o->off = -8;
  o->dw = unpack_half(b->d);
  o->has_min = false;
}
inline void lunpack(const BlockQ4_1* b, LBlock* o) {
  for (int i = 0; i < 16; ++i) {
    o->q[i] = b->qs[i] & 0xF;
    o->q[i + 16] = b->qs[i] >> 4;
  }
  o->off = 0;
  o->dw = unpack_half(b->d);
  o->mw = unpack_half(b->m);
  o->has_min = true;
}
inline uint32_t qh_bits(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}
inline void lunpack(const BlockQ5_0* b, LBlock* o) {
  const uint32_t qh = qh_bits(b->qh);
  for (int i = 0; i < 16; ++i) {
    o->q[i] = static_cast<int16_t>((b->qs[i] & 0xF) | (((qh >> i) & 1) << 4));
    o->q[i + 16] = static_cast<int16_t>((b->qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4));
  }
  o->off = -16;
  o->dw = unpack_half(b->d);
  o->has_min = false;
}
inline void lunpack(const BlockQ5_1* b, LBlock* o) {
  const uint32_t qh = qh_bits(b->qh);
  for (int i = 0; i < 16; ++i) {
    o->q[i] = static_cast<int16_t>((b->qs[i] & 0xF) | (((qh >> i) & 1) << 4));
    o->q[i + 16] = static_cast<int16_t>((b->qs[i] >> 4) | (((qh >> (i + 16)) & 1) << 4));
  }
  o->off = 0;
  o->dw = unpack_half(b->d);
  o->mw = unpack_half(b->m);
  o->has_min = true;
}

// The canonical float steps.
inline float canon_step(float acc, float w, float dx, int32_t i) {
  return __builtin_fmaf(w * dx, static_cast<float>(i), acc);
}

}  // namespace
}  // namespace minnow
