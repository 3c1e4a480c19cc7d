// IEEE half and bfloat16 conversions, done on the bits so they behave the same on every host.
#include <cstring>

#include "quant/quant_ref.h"

namespace minnow {

namespace {
uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  if (exp == 0x1F) return float_of(sign | 0x7F800000u | (mant << 13));  // inf / nan
  if (exp == 0) {
    if (mant == 0) return float_of(sign);
    // Subnormal: value = mant * 2^-24, exactly representable in f32.
    float v = static_cast<float>(mant) * float_of(0x33800000u);  // 2^-24
    return sign ? -v : v;
  }
  return float_of(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t fp32_to_fp16(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00 | ((abs >> 13) & 0x3FF));  // nan
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00);  // rounds to >= 65536: inf
  const int32_t exp = static_cast<int32_t>(abs >> 23) - 127;
  if (exp >= -14) {
    // Normal half: keep 10 mantissa bits, round to nearest even on the 13 dropped bits.
    uint32_t m = abs & 0x7FFFFFu;
    uint32_t half = (static_cast<uint32_t>(exp + 15) << 10) | (m >> 13);
    uint32_t rest = m & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1))) ++half;  // may carry into the exponent: fine
    return static_cast<uint16_t>(sign | half);
  }
  if (exp < -25) return sign;  // below half the smallest subnormal: zero
  // Subnormal half: value / 2^-24 rounded to nearest even.
  uint32_t m = (abs & 0x7FFFFFu) | 0x800000u;  // 24-bit significand, value = m * 2^(exp-23)
  int shift = -exp - 1;                         // m * 2^(exp-23) / 2^-24 = m >> (-exp - 1)
  uint32_t q = m >> shift;
  uint32_t rest = m & ((1u << shift) - 1);
  uint32_t halfway = 1u << (shift - 1);
  if (rest > halfway || (rest == halfway && (q & 1))) ++q;
  return static_cast<uint16_t>(sign | q);
}

float bf16_to_fp32(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet nan
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1)) >> 16);
}

}  // namespace minnow
