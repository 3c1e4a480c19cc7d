#pragma once
// Builds a GGUF v3 file in memory order and writes it atomically (temp file + rename).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf_file.h"

namespace minnow {

class GgufWriter {
 public:
  explicit GgufWriter(size_t alignment = 32) : alignment_(alignment) {}
  // Setting a key that already exists replaces its value in place.
  void set_u32(std::string_view key, uint32_t v);
  void set_i32(std::string_view key, int32_t v);
  void set_u64(std::string_view key, uint64_t v);
  void set_f32(std::string_view key, float v);
  void set_bool(std::string_view key, bool v);
  void set_string(std::string_view key, std::string_view v);
  void set_array_string(std::string_view key, const std::vector<std::string>& v);
  void set_array_i32(std::string_view key, const std::vector<int32_t>& v);
  void set_array_f32(std::string_view key, const std::vector<float>& v);
  void copy_value(std::string_view key, const GgufValue& v);  // any value read from a GgufFile
  void remove(std::string_view key);

  // ne as in GgufTensorInfo (ne[0] innermost); 1..4 dims. data is copied. nbytes must match type/shape.
  void add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& ne, const void* data,
                  size_t nbytes);

  void write(const std::string& path) const;  // throws Error on I/O failure
  std::vector<uint8_t> to_bytes() const;       // the whole file image (for tests)

 private:
  struct Kv { std::string key; std::vector<uint8_t> encoded; };  // encoded = type + value
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;    // [n_dims] (1..4), ne[0] innermost
    std::vector<uint8_t> data;  // [row_bytes(type, prod(ne))] raw blocks
  };
  void put(std::string_view key, std::vector<uint8_t> encoded);
  size_t alignment_;
  std::vector<Kv> kv_;
  std::vector<Tensor> tensors_;
};

}  // namespace minnow
