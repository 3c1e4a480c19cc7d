#pragma once
// Tensor element/block formats, numbered as in GGUF files (ggml's type ids).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace minnow {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  BF16 = 30,
};

struct TypeTraits {
  const char* name;     // "q4_K", as ggml spells it
  int64_t block_size;   // elements per block
  size_t type_size;     // bytes per block
  bool supported;       // minnow can dequantize and compute with it
};

// Traits for a raw type id read from a file; nullopt for ids minnow does not know (size unknown).
std::optional<TypeTraits> type_traits(uint32_t raw_type);
TypeTraits traits(GgmlType t);  // for a known type
std::string_view type_name(GgmlType t);
// Bytes for a row of n elements; n must be a multiple of the block size (caller checks).
size_t row_bytes(GgmlType t, int64_t n);

}  // namespace minnow
