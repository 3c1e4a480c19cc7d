#pragma once
// Read-only, memory-mapped GGUF (v2 and v3) file. Every count, length, type, offset and size is validated
// against the file size before use; any problem throws minnow::Error with a one-line message.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "quant/ggml_type.h"

namespace minnow {

enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
  BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view gguf_type_name(GgufValueType t);

// One metadata value. Strings point into the mapping (valid while the GgufFile lives).
class GgufValue {
 public:
  GgufValueType type() const { return type_; }
  bool is_integer() const;  // any of the 8 integer types
  bool is_float() const;    // FLOAT32 / FLOAT64
  // Typed access; throws Error naming the expected and actual type when the type does not fit.
  int64_t as_int() const;        // any integer type (UINT64 above INT64_MAX throws)
  double as_float() const;       // float or integer types
  bool as_bool() const;
  std::string_view as_string() const;
  // Arrays.
  GgufValueType array_type() const;  // element type; throws if not an array
  size_t array_size() const;
  const GgufValue& at(size_t i) const;  // element i (bounds-checked)
  std::string display(size_t max_items = 8) const;  // short human-readable rendering for `info`
  // Numeric/bool arrays only: the elements' raw little-endian bytes in the mapping (possibly unaligned;
  // read with memcpy), array_size() elements of the array_type()'s size. nullptr for other values.
  const uint8_t* array_raw() const { return raw_; }

  // Construction is for the parser (and writer tests).
  GgufValueType type_ = GgufValueType::UINT8;
  uint64_t u_ = 0;    // integers (two's complement for signed), bool
  double f_ = 0;      // floats
  std::string_view s_;
  GgufValueType elem_type_ = GgufValueType::UINT8;
  std::vector<GgufValue> items_;  // [array_size()] elements of an array
  const uint8_t* raw_ = nullptr;  // see array_raw()
};
size_t gguf_type_size(GgufValueType t);  // bytes of a fixed-size scalar type; 0 for STRING / ARRAY

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  uint32_t n_dims;
  int64_t ne[4];          // ne[0] is the innermost (contiguous) dimension; unused dims are 1
  uint64_t offset;        // relative to the data section
  size_t nbytes;
  const uint8_t* data;    // points into the mapping
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  // Opens, maps and validates the whole header and tensor directory. Throws Error on any problem.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Same checks on a file image held in memory (fuzzing, tests); name is used in error messages.
  static std::unique_ptr<GgufFile> open_memory(std::vector<uint8_t> bytes, const std::string& name = "<memory>");
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  const std::string& path() const { return path_; }
  size_t file_size() const { return size_; }
  const uint8_t* data_section() const { return data_section_; }
  size_t data_offset() const { return static_cast<size_t>(data_section_ - map_); }  // in the file

  // Metadata, in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  // Convenience getters: nullopt when absent; throw Error when present with an incompatible type.
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string_view> get_string(std::string_view key) const;
  // Same, but a missing key throws Error("missing metadata key KEY").
  int64_t require_int(std::string_view key) const;
  double require_float(std::string_view key) const;
  std::string_view require_string(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  std::string path_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  const uint8_t* map_ = nullptr;  // [size_] bytes: the mapping, or owned_.data()
  size_t size_ = 0;
  bool mapped_ = false;           // map_ must be munmap'ed
  std::vector<uint8_t> owned_;    // [size_] file image for open_memory
  const uint8_t* data_section_ = nullptr;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<GgufTensorInfo> tensors_;
  friend class GgufParser;
};

}  // namespace minnow
