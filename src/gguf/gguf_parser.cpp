// GGUF parsing. The file is untrusted: every count and length is checked against the bytes that remain
// before anything is allocated, and every size/offset computation is overflow-checked.
#include "gguf/gguf_parser.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "common/error.h"

namespace minnow {

std::string printable(std::string_view s, size_t max_chars) {
  std::string out;
  size_t n = 0;
  for (char c : s) {
    if (n++ >= max_chars) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

void GgufParser::fail(const std::string& what) const { throw Error(f_.path_ + ": " + what); }

void GgufParser::need(size_t n, const char* what) const {
  if (n > remaining())
    fail(std::string("truncated: ") + what + " at byte " + std::to_string(pos()) + " needs " + std::to_string(n) +
         " bytes, " + std::to_string(remaining()) + " left");
}

template <class T>
T GgufParser::read(const char* what) {
  need(sizeof(T), what);
  T v;
  std::memcpy(&v, p_, sizeof(T));  // GGUF is little-endian, as is every host minnow targets
  p_ += sizeof(T);
  return v;
}

std::string_view GgufParser::read_string(const char* what) {
  uint64_t len = read<uint64_t>(what);
  if (len > remaining())
    fail(std::string(what) + " at byte " + std::to_string(pos() - 8) + " has length " + std::to_string(len) +
         ", more than the " + std::to_string(remaining()) + " bytes left");
  std::string_view s(reinterpret_cast<const char*>(p_), static_cast<size_t>(len));
  p_ += len;
  return s;
}

static bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::FLOAT64); }

// Fewest bytes one value of type t can occupy in the file (strings: the length; arrays: type + count).
static size_t min_encoded_size(GgufValueType t) {
  if (t == GgufValueType::STRING) return 8;
  if (t == GgufValueType::ARRAY) return 12;
  return gguf_type_size(t);
}

GgufValue GgufParser::read_value(GgufValueType t, int depth, const std::string& key) {
  GgufValue v;
  v.type_ = t;
  switch (t) {
    case GgufValueType::UINT8: v.u_ = read<uint8_t>("u8 value"); break;
    case GgufValueType::INT8: v.u_ = static_cast<uint64_t>(static_cast<int64_t>(read<int8_t>("i8 value"))); break;
    case GgufValueType::UINT16: v.u_ = read<uint16_t>("u16 value"); break;
    case GgufValueType::INT16: v.u_ = static_cast<uint64_t>(static_cast<int64_t>(read<int16_t>("i16 value"))); break;
    case GgufValueType::UINT32: v.u_ = read<uint32_t>("u32 value"); break;
    case GgufValueType::INT32: v.u_ = static_cast<uint64_t>(static_cast<int64_t>(read<int32_t>("i32 value"))); break;
    case GgufValueType::UINT64: v.u_ = read<uint64_t>("u64 value"); break;
    case GgufValueType::INT64: v.u_ = read<uint64_t>("i64 value"); break;
    case GgufValueType::FLOAT32: v.f_ = read<float>("f32 value"); break;
    case GgufValueType::FLOAT64: v.f_ = read<double>("f64 value"); break;
    case GgufValueType::BOOL: {
      uint8_t b = read<uint8_t>("bool value");
      if (b > 1) fail("metadata key " + printable(key) + ": invalid bool value " + std::to_string(b));
      v.u_ = b;
      break;
    }
    case GgufValueType::STRING: v.s_ = read_string("string value"); break;
    case GgufValueType::ARRAY: {
      if (depth >= kMaxArrayDepth)
        fail("metadata key " + printable(key) + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth));
      uint32_t et = read<uint32_t>("array element type");
      if (!valid_value_type(et))
        fail("metadata key " + printable(key) + ": unknown array element type " + std::to_string(et));
      v.elem_type_ = static_cast<GgufValueType>(et);
      uint64_t n = read<uint64_t>("array length");
      size_t min = min_encoded_size(v.elem_type_);
      if (n > remaining() / min)
        fail("metadata key " + printable(key) + ": array length " + std::to_string(n) + " of " +
             std::string(gguf_type_name(v.elem_type_)) + " cannot fit in the " + std::to_string(remaining()) +
             " bytes left");
      array_elements_ += n;
      if (array_elements_ > kMaxArrayElements)
        fail("metadata key " + printable(key) + ": more than " + std::to_string(kMaxArrayElements) +
             " array elements in the file");
      if (gguf_type_size(v.elem_type_) != 0) v.raw_ = p_;
      v.items_.reserve(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i) v.items_.push_back(read_value(v.elem_type_, depth + 1, key));
      break;
    }
  }
  return v;
}

void GgufParser::read_kvs(uint64_t n_kv) {
  // Each pair takes at least a key length (8), a value type (4) and one byte of value.
  if (n_kv > remaining() / 13)
    fail("metadata count " + std::to_string(n_kv) + " cannot fit in the " + std::to_string(remaining()) +
         " bytes left");
  f_.kv_.reserve(static_cast<size_t>(n_kv));
  std::unordered_set<std::string_view> seen;
  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string_view key = read_string("metadata key");
    if (!seen.insert(key).second) fail("duplicate metadata key " + printable(key));
    uint32_t t = read<uint32_t>("metadata value type");
    std::string k(key);
    if (!valid_value_type(t)) fail("metadata key " + printable(key) + ": unknown value type " + std::to_string(t));
    GgufValue v = read_value(static_cast<GgufValueType>(t), 0, k);
    f_.kv_.emplace_back(std::move(k), std::move(v));
  }
  if (const GgufValue* a = f_.find("general.alignment")) {
    if (!a->is_integer()) fail("general.alignment is " + std::string(gguf_type_name(a->type())) + ", not an integer");
    uint64_t al = a->u_;
    if (a->type() != GgufValueType::UINT64 && static_cast<int64_t>(al) < 0)
      fail("general.alignment " + std::to_string(static_cast<int64_t>(al)) + " is negative");
    if (al == 0 || (al & (al - 1)) != 0)
      fail("general.alignment " + std::to_string(al) + " is not a non-zero power of two");
    if (al > (uint64_t{1} << 30)) fail("general.alignment " + std::to_string(al) + " is unreasonably large");
    f_.alignment_ = static_cast<size_t>(al);
  }
}

void GgufParser::read_tensor_infos(uint64_t n_tensors) {
  // Each entry takes at least: name length 8, n_dims 4, one dim 8, type 4, offset 8.
  if (n_tensors > remaining() / 32)
    fail("tensor count " + std::to_string(n_tensors) + " cannot fit in the " + std::to_string(remaining()) +
         " bytes left");
  f_.tensors_.reserve(static_cast<size_t>(n_tensors));
  std::unordered_set<std::string_view> seen;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t{};
    std::string_view name = read_string("tensor name");
    if (!seen.insert(name).second) fail("duplicate tensor name " + printable(name));
    t.name = std::string(name);
    const std::string what = "tensor " + printable(name);
    t.n_dims = read<uint32_t>("tensor dimension count");
    if (t.n_dims == 0 || t.n_dims > 4)
      fail(what + ": " + std::to_string(t.n_dims) + " dimensions (must be 1 to 4)");
    for (int d = 0; d < 4; ++d) t.ne[d] = 1;
    int64_t n_el = 1;
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      uint64_t ne = read<uint64_t>("tensor dimension");
      if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(what + ": invalid dimension " + std::to_string(ne));
      t.ne[d] = static_cast<int64_t>(ne);
      if (__builtin_mul_overflow(n_el, t.ne[d], &n_el)) fail(what + ": element count overflows");
    }
    uint32_t raw_type = read<uint32_t>("tensor type");
    auto tr = type_traits(raw_type);
    if (!tr) fail(what + ": unknown tensor type id " + std::to_string(raw_type));
    t.type = static_cast<GgmlType>(raw_type);
    if (t.ne[0] % tr->block_size != 0)
      fail(what + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of " + tr->name + "'s block size " +
           std::to_string(tr->block_size));
    size_t nbytes;
    if (__builtin_mul_overflow(static_cast<size_t>(n_el / tr->block_size), tr->type_size, &nbytes))
      fail(what + ": byte size overflows");
    t.nbytes = nbytes;
    t.offset = read<uint64_t>("tensor offset");
    f_.tensors_.push_back(std::move(t));
  }
}

void GgufParser::place_tensors() {
  size_t al = f_.alignment_;
  size_t start;
  if (__builtin_add_overflow(pos(), al - 1, &start)) fail("data section offset overflows");
  start -= start % al;
  if (start > f_.size_) {
    // A file without tensors need not pad up to the (empty) data section.
    if (!f_.tensors_.empty())
      fail("data section starts at byte " + std::to_string(start) + ", past the end of the file (" +
           std::to_string(f_.size_) + " bytes)");
    start = f_.size_;
  }
  f_.data_section_ = f_.map_ + start;
  size_t data_size = f_.size_ - start;

  for (auto& t : f_.tensors_) {
    const std::string what = "tensor " + printable(t.name);
    if (t.offset % al != 0)
      fail(what + ": offset " + std::to_string(t.offset) + " is not a multiple of the alignment " + std::to_string(al));
    uint64_t end;
    if (__builtin_add_overflow(t.offset, static_cast<uint64_t>(t.nbytes), &end) || end > data_size)
      fail(what + ": data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
           ") extends past the end of the file (data section is " + std::to_string(data_size) + " bytes)");
    t.data = f_.data_section_ + t.offset;
  }

  std::vector<size_t> order(f_.tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return f_.tensors_[a].offset < f_.tensors_[b].offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const GgufTensorInfo& prev = f_.tensors_[order[i - 1]];
    const GgufTensorInfo& cur = f_.tensors_[order[i]];
    if (cur.offset < prev.offset + prev.nbytes)
      fail("tensor " + printable(cur.name) + " overlaps tensor " + printable(prev.name));
  }
}

void GgufParser::parse() {
  need(kMinHeader, "header");
  if (std::memcmp(p_, "GGUF", 4) != 0) fail("bad magic (not a GGUF file)");
  p_ += 4;
  uint32_t version = read<uint32_t>("version");
  if (version == 1) fail("GGUF version 1 is not supported (only versions 2 and 3)");
  if (version != 2 && version != 3)
    fail("unsupported GGUF version " + std::to_string(version) + " (only versions 2 and 3)");
  f_.version_ = version;
  uint64_t n_tensors = read<uint64_t>("tensor count");
  uint64_t n_kv = read<uint64_t>("metadata count");
  read_kvs(n_kv);
  read_tensor_infos(n_tensors);
  place_tensors();
}

}  // namespace minnow
