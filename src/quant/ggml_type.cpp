#include "quant/ggml_type.h"

#include "common/error.h"

namespace minnow {

std::optional<TypeTraits> type_traits(uint32_t raw) {
  switch (static_cast<GgmlType>(raw)) {
    case GgmlType::F32: return TypeTraits{"f32", 1, 4, true};
    case GgmlType::F16: return TypeTraits{"f16", 1, 2, true};
    case GgmlType::BF16: return TypeTraits{"bf16", 1, 2, true};
    case GgmlType::Q4_0: return TypeTraits{"q4_0", 32, 18, true};
    case GgmlType::Q4_1: return TypeTraits{"q4_1", 32, 20, true};
    case GgmlType::Q5_0: return TypeTraits{"q5_0", 32, 22, true};
    case GgmlType::Q5_1: return TypeTraits{"q5_1", 32, 24, true};
    case GgmlType::Q8_0: return TypeTraits{"q8_0", 32, 34, true};
    case GgmlType::Q8_1: return TypeTraits{"q8_1", 32, 36, false};
    case GgmlType::Q2_K: return TypeTraits{"q2_K", 256, 84, true};
    case GgmlType::Q3_K: return TypeTraits{"q3_K", 256, 110, true};
    case GgmlType::Q4_K: return TypeTraits{"q4_K", 256, 144, true};
    case GgmlType::Q5_K: return TypeTraits{"q5_K", 256, 176, true};
    case GgmlType::Q6_K: return TypeTraits{"q6_K", 256, 210, true};
    case GgmlType::Q8_K: return TypeTraits{"q8_K", 256, 292, false};
    case GgmlType::I8: return TypeTraits{"i8", 1, 1, false};
    case GgmlType::I16: return TypeTraits{"i16", 1, 2, false};
    case GgmlType::I32: return TypeTraits{"i32", 1, 4, false};
    case GgmlType::I64: return TypeTraits{"i64", 1, 8, false};
    case GgmlType::F64: return TypeTraits{"f64", 1, 8, false};
  }
  return std::nullopt;
}

TypeTraits traits(GgmlType t) {
  auto tr = type_traits(static_cast<uint32_t>(t));
  if (!tr) throw Error("unknown tensor type id " + std::to_string(static_cast<uint32_t>(t)));
  return *tr;
}

std::string_view type_name(GgmlType t) { return traits(t).name; }

size_t row_bytes(GgmlType t, int64_t n) {
  TypeTraits tr = traits(t);
  return static_cast<size_t>(n / tr.block_size) * tr.type_size;
}

}  // namespace minnow
