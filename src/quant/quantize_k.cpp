// Encoders of the K-quant super-blocks. Each sub-block gets its own scale (and min) from a search
// (k_search.h); those are then quantized to 4/6/8 bits against one fp16 super-block scale, and every element
// is re-rounded against the scale it will actually be decoded with.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/blocks.h"
#include "quant/k_search.h"
#include "quant/quant_impl.h"
#include "quant/quant_ref.h"

namespace minnow::qimpl {

namespace {
// Sub-block scales/mins of Q4_K / Q5_K: 8 sub-blocks of 32 with weights rms(x) + |x|, then 6-bit codes
// packed into 12 bytes, and levels re-rounded. L[256] in [0, nmax].
void k4_block(const float* x, int nmax, float rmin, int nstep, uint16_t* d_out, uint16_t* dmin_out,
              uint8_t packed[12], uint8_t L[kQKK]) {
  float scales[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
    const float av = std::sqrt(sum_x2 / 32.0f);
    for (int l = 0; l < 32; ++l) w[l] = av + std::fabs(xs[l]);
    scales[j] = search_offset(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  std::memset(packed, 0, 12);
  for (int j = 0; j < 8; ++j) {
    const int ls = clampi(nearest_int(inv_scale * scales[j]), 0, 63);
    const int lm = clampi(nearest_int(inv_min * mins[j]), 0, 63);
    if (j < 4) {
      packed[j] = static_cast<uint8_t>(ls);
      packed[j + 4] = static_cast<uint8_t>(lm);
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  *d_out = fp32_to_fp16(max_scale / 63.0f);
  *dmin_out = fp32_to_fp16(max_min / 63.0f);
  const float d = fp16_to_fp32(*d_out), dmin = fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    k4_scale_min(j, packed, &sc, &m);
    const float ds = d * sc;
    if (ds == 0.0f) continue;
    const float dm = dmin * m;
    for (int l = 0; l < 32; ++l)
      L[32 * j + l] = static_cast<uint8_t>(clampi(nearest_int((x[32 * j + l] + dm) / ds), 0, nmax));
  }
}

// Q2_K / Q3_K low bits: 2-bit levels L[256] in [0, 3]; element 128h + 32k + l goes to bits 2k of qs[32h + l].
void pack_2bit(const uint8_t* L, uint8_t qs[64]) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* Lh = L + 128 * h;
      qs[32 * h + l] = static_cast<uint8_t>(Lh[l] | (Lh[l + 32] << 2) | (Lh[l + 64] << 4) | (Lh[l + 96] << 6));
    }
}

}  // namespace

void quant_q2_k(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    BlockQ2_K b{};
    uint8_t L[kQKK];
    float scales[16], mins[16], w[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
      scales[j] = search_offset(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    if (max_scale > 0) {
      const float iscale = 15.0f / max_scale;
      for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<uint8_t>(clampi(nearest_int(iscale * scales[j]), 0, 15));
      b.d = fp32_to_fp16(max_scale / 15.0f);
    }
    if (max_min > 0) {
      const float iscale = 15.0f / max_min;
      for (int j = 0; j < 16; ++j)
        b.scales[j] |= static_cast<uint8_t>(clampi(nearest_int(iscale * mins[j]), 0, 15) << 4);
      b.dmin = fp32_to_fp16(max_min / 15.0f);
    }
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int j = 0; j < 16; ++j) {
      const float ds = d * static_cast<float>(b.scales[j] & 0xF);
      if (ds == 0.0f) continue;
      const float dm = dmin * static_cast<float>(b.scales[j] >> 4);
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] = static_cast<uint8_t>(clampi(nearest_int((x[16 * j + l] + dm) / ds), 0, 3));
    }
    pack_2bit(L, b.qs);
    store(dst, i, b);
  }
}

void quant_q3_k(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    BlockQ3_K b{};
    uint8_t L[kQKK];
    float scales[16];
    for (int j = 0; j < 16; ++j) scales[j] = search_symmetric_greedy(16, 4, x + 16 * j, L + 16 * j);
    const float vmax = signed_absmax(scales, 16);
    if (vmax != 0.0f) {
      const float iscale = -32.0f / vmax;
      for (int j = 0; j < 16; ++j) {
        const int l = clampi(nearest_int(iscale * scales[j]), -32, 31) + 32;
        if (j < 8) b.scales[j] = static_cast<uint8_t>(l & 0xF);
        else b.scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        b.scales[8 + j % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
      }
      b.d = fp32_to_fp16(1.0f / iscale);
    }
    const float d = fp16_to_fp32(b.d);
    int8_t sc[16];
    q3k_scales(b.scales, sc);
    for (int j = 0; j < 16; ++j) {
      const float ds = d * static_cast<float>(sc[j] - 32);
      if (ds == 0.0f) continue;
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] = static_cast<uint8_t>(clampi(nearest_int(x[16 * j + l] / ds), -4, 3) + 4);
    }
    // High bit of element e goes to bit e/32 of hmask[e%32]; the low 2 bits pack as in Q2_K.
    for (int e = 0; e < kQKK; ++e) {
      if (L[e] > 3) {
        b.hmask[e % 32] |= static_cast<uint8_t>(1 << (e / 32));
        L[e] = static_cast<uint8_t>(L[e] - 4);
      }
    }
    pack_2bit(L, b.qs);
    store(dst, i, b);
  }
}

void quant_q4_k(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    BlockQ4_K b{};
    uint8_t L[kQKK];
    k4_block(x, 15, -1.0f, 20, &b.d, &b.dmin, b.scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        b.qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    store(dst, i, b);
  }
}

void quant_q5_k(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    BlockQ5_K b{};
    uint8_t L[kQKK];
    k4_block(x, 31, -0.5f, 15, &b.d, &b.dmin, b.scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const int q1 = L[64 * c + l], q2 = L[64 * c + 32 + l];
        b.qs[32 * c + l] = static_cast<uint8_t>((q1 & 0xF) | ((q2 & 0xF) << 4));
        b.qh[l] |= static_cast<uint8_t>(((q1 >> 4) << (2 * c)) | ((q2 >> 4) << (2 * c + 1)));
      }
    store(dst, i, b);
  }
}

void quant_q6_k(const float* x, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    BlockQ6_K b{};
    uint8_t L[kQKK];
    float scales[16];
    for (int j = 0; j < 16; ++j) scales[j] = search_symmetric(16, 32, x + 16 * j, L + 16 * j);
    const float vmax = signed_absmax(scales, 16);
    if (vmax != 0.0f) {
      const float iscale = -128.0f / vmax;
      b.d = fp32_to_fp16(1.0f / iscale);
      for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(clampi(nearest_int(iscale * scales[j]), -128, 127));
    }
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < 16; ++j) {
      const float ds = d * static_cast<float>(b.scales[j]);
      if (ds == 0.0f) continue;
      for (int l = 0; l < 16; ++l)
        L[16 * j + l] = static_cast<uint8_t>(clampi(nearest_int(x[16 * j + l] / ds), -32, 31) + 32);
    }
    for (int h = 0; h < 2; ++h) {
      const uint8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        b.ql[64 * h + l] = static_cast<uint8_t>((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        b.ql[64 * h + 32 + l] = static_cast<uint8_t>((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        b.qh[32 * h + l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                                ((Lh[l + 96] >> 4) << 6));
      }
    }
    store(dst, i, b);
  }
}

}  // namespace minnow::qimpl
