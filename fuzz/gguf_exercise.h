#pragma once
// Touches everything a parsed GgufFile exposes (every value, every tensor's first and last byte), so a
// sanitizer sees any pointer or length the parser let through unchecked. Returns a checksum to keep the
// reads alive.
#include <cstdint>

#include "common/error.h"
#include "gguf/gguf_file.h"

namespace minnow {

inline uint64_t exercise_value(const GgufValue& v) {
  uint64_t h = static_cast<uint64_t>(v.type());
  h += v.display(4).size();
  if (v.type() == GgufValueType::STRING) {
    std::string_view s = v.as_string();
    if (!s.empty()) h += static_cast<unsigned char>(s.front()) + static_cast<unsigned char>(s.back());
  } else if (v.type() == GgufValueType::ARRAY) {
    size_t n = v.array_size();
    if (n > 0) h += exercise_value(v.at(0)) + exercise_value(v.at(n - 1));
    if (const uint8_t* raw = v.array_raw(); raw && n > 0) h += raw[0] + raw[n * gguf_type_size(v.array_type()) - 1];
  } else if (v.is_integer()) {
    try {
      h += static_cast<uint64_t>(v.as_int());
    } catch (const Error&) {  // u64 above INT64_MAX
    }
  }
  return h;
}

inline uint64_t exercise(const GgufFile& f) {
  uint64_t h = f.version() + f.alignment() + f.data_offset();
  for (auto& [k, v] : f.metadata()) h += k.size() + exercise_value(v);
  for (auto& t : f.tensors()) {
    h += t.name.size() + static_cast<uint64_t>(t.n_elements());
    h += t.data[0] + t.data[t.nbytes - 1];
    if (f.find_tensor(t.name) != &t) throw Error("find_tensor does not find " + t.name);
  }
  return h;
}

}  // namespace minnow
