#pragma once
// Byte layouts of ggml's block formats, exactly as stored in GGUF files. fp16 fields are raw IEEE half bits.
// Legacy formats hold 32 elements per block; K-quants hold a 256-element super-block split into sub-blocks.
#include <cstdint>

namespace minnow {

inline constexpr int kQK = 32;    // elements per legacy block
inline constexpr int kQKK = 256;  // elements per K-quant super-block

struct BlockQ4_0 {
  uint16_t d;           // scale (fp16)
  uint8_t qs[kQK / 2];  // [16] low nibble: element j, high nibble: element j+16; value = (q - 8) * d
};
struct BlockQ4_1 {
  uint16_t d;           // scale (fp16)
  uint16_t m;           // offset (fp16)
  uint8_t qs[kQK / 2];  // [16] as Q4_0; value = q * d + m
};
struct BlockQ5_0 {
  uint16_t d;           // scale (fp16)
  uint8_t qh[4];        // [32 bits] bit j = 5th bit of element j (little-endian 32-bit word)
  uint8_t qs[kQK / 2];  // [16] low 4 bits as Q4_0; value = (q - 16) * d
};
struct BlockQ5_1 {
  uint16_t d;           // scale (fp16)
  uint16_t m;           // offset (fp16)
  uint8_t qh[4];        // [32 bits] as Q5_0
  uint8_t qs[kQK / 2];  // [16]; value = q * d + m
};
struct BlockQ8_0 {
  uint16_t d;      // scale (fp16)
  int8_t qs[kQK];  // [32] value = q * d
};

// Q2_K: 16 sub-blocks of 16; 2-bit quants; 4-bit scale and 4-bit min per sub-block.
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];  // [16] low nibble: scale, high nibble: min
  uint8_t qs[kQKK / 4];       // [64] 2 bits each (see dequantize for the order)
  uint16_t d;                 // super-block scale for scales (fp16)
  uint16_t dmin;              // super-block scale for mins (fp16)
};
// Q3_K: 16 sub-blocks of 16; 3-bit quants (2 low bits in qs, high bit in hmask); 6-bit signed scales.
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];  // [32] high bits: bit b of hmask[l] belongs to element 32*b + l
  uint8_t qs[kQKK / 4];     // [64] low 2 bits
  uint8_t scales[12];       // 16 x 6 bits, offset by 32
  uint16_t d;               // super-block scale (fp16)
};
// Q4_K: 8 sub-blocks of 32; 4-bit quants; 6-bit scales and mins packed in 12 bytes.
struct BlockQ4_K {
  uint16_t d;              // super-block scale for scales (fp16)
  uint16_t dmin;           // super-block scale for mins (fp16)
  uint8_t scales[12];      // 8 scales + 8 mins, 6 bits each
  uint8_t qs[kQKK / 2];    // [128] 4 bits each
};
// Q5_K: as Q4_K plus a fifth bit per element.
struct BlockQ5_K {
  uint16_t d;              // super-block scale for scales (fp16)
  uint16_t dmin;           // super-block scale for mins (fp16)
  uint8_t scales[12];      // 8 scales + 8 mins, 6 bits each
  uint8_t qh[kQKK / 8];    // [32] high bits
  uint8_t qs[kQKK / 2];    // [128] low 4 bits
};
// Q6_K: 16 sub-blocks of 16; 6-bit quants (4 low bits in ql, 2 high bits in qh); int8 scales.
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];       // [128] low 4 bits
  uint8_t qh[kQKK / 4];       // [64] high 2 bits
  int8_t scales[kQKK / 16];   // [16]
  uint16_t d;                 // super-block scale (fp16)
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of Q4_K / Q5_K.
inline void k4_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// The 16 6-bit scales of Q3_K (still offset by 32) from its 12 packed bytes.
inline void q3k_scales(const uint8_t* packed, int8_t out[16]) {
  for (int j = 0; j < 16; ++j) {
    int low = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    int high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
    out[j] = static_cast<int8_t>(low | (high << 4));
  }
}

}  // namespace minnow
