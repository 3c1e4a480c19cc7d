#include "quant/simd/act_quant.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace minnow {

namespace {

size_t round64(size_t n) { return (n + 63) & ~static_cast<size_t>(63); }

struct Layout {
  size_t qs, d, sum, bsum, bsum32, total;
};

Layout layout(ActKind k, int64_t n_in, int64_t n_tok) {
  const int64_t nb = n_in / act_block(k);
  Layout l{};
  l.qs = 0;
  l.d = round64(static_cast<size_t>(n_tok * n_in));
  l.sum = l.d + round64(static_cast<size_t>(nb * n_tok) * sizeof(float));
  const size_t sum_bytes = k == ActKind::Q8_32 ? round64(static_cast<size_t>(nb * n_tok) * sizeof(int32_t)) : 0;
  l.bsum = l.sum + sum_bytes;
  const size_t bsum_bytes =
      k == ActKind::Q8_256 ? round64(static_cast<size_t>(n_tok * nb * 16) * sizeof(int16_t)) : 0;
  l.bsum32 = l.bsum + bsum_bytes;
  const size_t bsum32_bytes =
      k == ActKind::Q8_256 ? round64(static_cast<size_t>(n_tok * nb * 8) * sizeof(int16_t)) : 0;
  l.total = l.bsum32 + bsum32_bytes;
  return l;
}

// Quantizes one block of n values; returns d, writes q[n]. Plain loops the compiler vectorizes; the
// result does not depend on how (max is exact, each quant is rounded on its own).
float quant_block(const float* x, int n, int8_t* q) {
  float amax = 0.0f;
  int bad = 0;
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    amax = a > amax ? a : amax;
    bad |= !(a <= 3.4028234663852886e38f);  // inf or nan
  }
  if (bad || !(amax > 0.0f)) {
    // A zero block, or inf/nan in the input: zero quants, and a NaN scale so the result is NaN as it
    // would be in float arithmetic.
    for (int i = 0; i < n; ++i) q[i] = 0;
    return bad ? std::nanf("") : 0.0f;
  }
  const float d = amax / 127.0f;
  const float id = 127.0f / amax;
  for (int i = 0; i < n; ++i) {
    float v = std::nearbyint(x[i] * id);
    v = v > 127.0f ? 127.0f : v;
    v = v < -127.0f ? -127.0f : v;
    q[i] = static_cast<int8_t>(static_cast<int>(v));
  }
  return d;
}

}  // namespace

ActKind act_kind(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
      return ActKind::Q8_32;
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return ActKind::Q8_256;
    default:
      return ActKind::None;
  }
}

int64_t act_block(ActKind k) { return k == ActKind::Q8_256 ? 256 : 32; }

size_t act_buffer_bytes(ActKind k, int64_t n_in, int64_t n_tok) { return layout(k, n_in, n_tok).total; }

ActQ act_view(ActKind k, void* buf, int64_t n_in, int64_t n_tok) {
  const Layout l = layout(k, n_in, n_tok);
  auto* p = static_cast<uint8_t*>(buf);
  ActQ a;
  a.n_in = n_in;
  a.n_tok = n_tok;
  a.nb = n_in / act_block(k);
  a.qs = reinterpret_cast<const int8_t*>(p + l.qs);
  a.d = reinterpret_cast<const float*>(p + l.d);
  if (k == ActKind::Q8_32) a.sum = reinterpret_cast<const int32_t*>(p + l.sum);
  if (k == ActKind::Q8_256) {
    a.bsum16 = reinterpret_cast<const int16_t*>(p + l.bsum);
    a.bsum32 = reinterpret_cast<const int16_t*>(p + l.bsum32);
  }
  return a;
}

void act_quantize(ActKind k, const float* x, void* buf, int64_t n_in, int64_t n_tok, int64_t t0, int64_t t1) {
  const Layout l = layout(k, n_in, n_tok);
  auto* p = static_cast<uint8_t*>(buf);
  auto* qs = reinterpret_cast<int8_t*>(p + l.qs);
  auto* d = reinterpret_cast<float*>(p + l.d);
  auto* sum = reinterpret_cast<int32_t*>(p + l.sum);
  auto* bsum = reinterpret_cast<int16_t*>(p + l.bsum);
  auto* bsum32 = reinterpret_cast<int16_t*>(p + l.bsum32);
  const int bs = static_cast<int>(act_block(k));
  const int64_t nb = n_in / bs;
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* xb = x + t * n_in + b * bs;
      int8_t* q = qs + t * n_in + b * bs;
      d[b * n_tok + t] = quant_block(xb, bs, q);
      if (k == ActKind::Q8_32) {
        int32_t s = 0;
        for (int i = 0; i < bs; ++i) s += q[i];
        sum[b * n_tok + t] = s;
      } else {
        int16_t* bsb = bsum + (t * nb + b) * 16;
        for (int g = 0; g < 16; ++g) {
          int s = 0;
          for (int i = 0; i < 16; ++i) s += q[g * 16 + i];
          bsb[g] = static_cast<int16_t>(s);
        }
        int16_t* b32 = bsum32 + (t * nb + b) * 8;
        for (int j = 0; j < 8; ++j) b32[j] = static_cast<int16_t>(bsb[2 * j] + bsb[2 * j + 1]);  // |.| <= 4064
      }
    }
  }
}

void act_residual(ActKind k, const float* x, const void* buf, float* r, int64_t n_in, int64_t n_tok, int64_t t0,
                  int64_t t1) {
  const Layout l = layout(k, n_in, n_tok);
  const auto* p = static_cast<const uint8_t*>(buf);
  const auto* qs = reinterpret_cast<const int8_t*>(p + l.qs);
  const auto* d = reinterpret_cast<const float*>(p + l.d);
  const int64_t bs = act_block(k), nb = n_in / bs;
  for (int64_t t = t0; t < t1; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      const float db = d[b * n_tok + t];
      const int64_t o = t * n_in + b * bs;
      for (int64_t i = 0; i < bs; ++i) r[o + i] = x[o + i] - db * static_cast<float>(qs[o + i]);
    }
}

int parse_act_bits(const char* s) {
  const std::string v = s ? s : "";
  if (v == "8") return 8;
  if (v == "16") return 16;
  throw Error("MINNOW_ACT_BITS='" + v + "' (expected 8 or 16)");
}

int act_bits() {
  static const int bits = [] {
    const char* e = std::getenv("MINNOW_ACT_BITS");
    return e && *e ? parse_act_bits(e) : 8;
  }();
  return bits;
}

}  // namespace minnow
