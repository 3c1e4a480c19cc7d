#pragma once
// Internal: validates and decodes a GGUF image (header, metadata, tensor directory) into a GgufFile.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gguf/gguf_file.h"

namespace minnow {

class GgufParser {
 public:
  static constexpr size_t kMinHeader = 24;      // magic, version, tensor count, kv count
  static constexpr int kMaxArrayDepth = 4;      // nested arrays allowed up to this depth
  // Each array element becomes a GgufValue (~80 bytes): a whole-file cap bounds that memory (~700 MB)
  // even for huge files. Real vocabularies use well under 2M elements.
  static constexpr uint64_t kMaxArrayElements = uint64_t{1} << 23;
  explicit GgufParser(GgufFile& f) : f_(f), p_(f.map_), end_(f.map_ + f.size_) {}
  void parse();  // throws Error("<path>: <problem>")

 private:
  [[noreturn]] void fail(const std::string& what) const;
  size_t pos() const { return static_cast<size_t>(p_ - f_.map_); }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  void need(size_t n, const char* what) const;
  template <class T>
  T read(const char* what);
  std::string_view read_string(const char* what);
  GgufValue read_value(GgufValueType t, int depth, const std::string& key);
  void read_kvs(uint64_t n_kv);
  void read_tensor_infos(uint64_t n_tensors);
  void place_tensors();

  GgufFile& f_;
  const uint8_t* p_;    // read cursor inside [f_.map_, end_)
  const uint8_t* end_;  // one past the last byte of the image
  uint64_t array_elements_ = 0;  // array elements read so far (all arrays)
};

// A name or key from the file made safe for a one-line message: control bytes escaped, long text cut.
std::string printable(std::string_view s, size_t max_chars = 64);

}  // namespace minnow
