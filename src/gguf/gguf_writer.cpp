// GgufWriter: encodes metadata and tensors as GGUF v3 and writes the file atomically.
#include "gguf/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "common/error.h"

namespace minnow {

namespace {

template <class T>
void put_raw(std::vector<uint8_t>& out, T v) {
  size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void put_str(std::vector<uint8_t>& out, std::string_view s) {
  put_raw<uint64_t>(out, s.size());
  size_t at = out.size();
  out.resize(at + s.size());
  if (!s.empty()) std::memcpy(out.data() + at, s.data(), s.size());
}

void put_type(std::vector<uint8_t>& out, GgufValueType t) { put_raw<uint32_t>(out, static_cast<uint32_t>(t)); }

// The payload of a value (no leading type), as the parser reads it back.
void encode_payload(std::vector<uint8_t>& out, const GgufValue& v) {
  switch (v.type_) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL: put_raw<uint8_t>(out, static_cast<uint8_t>(v.u_)); break;
    case GgufValueType::UINT16:
    case GgufValueType::INT16: put_raw<uint16_t>(out, static_cast<uint16_t>(v.u_)); break;
    case GgufValueType::UINT32:
    case GgufValueType::INT32: put_raw<uint32_t>(out, static_cast<uint32_t>(v.u_)); break;
    case GgufValueType::UINT64:
    case GgufValueType::INT64: put_raw<uint64_t>(out, v.u_); break;
    case GgufValueType::FLOAT32: put_raw<float>(out, static_cast<float>(v.f_)); break;
    case GgufValueType::FLOAT64: put_raw<double>(out, v.f_); break;
    case GgufValueType::STRING: put_str(out, v.s_); break;
    case GgufValueType::ARRAY:
      put_type(out, v.elem_type_);
      put_raw<uint64_t>(out, v.items_.size());
      for (auto& item : v.items_) {
        if (item.type_ != v.elem_type_) throw Error("array element type differs from the array's element type");
        encode_payload(out, item);
      }
      break;
    default: throw Error("unknown metadata value type " + std::to_string(static_cast<uint32_t>(v.type_)));
  }
}

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

}  // namespace

void GgufWriter::put(std::string_view key, std::vector<uint8_t> encoded) {
  for (auto& kv : kv_)
    if (kv.key == key) {
      kv.encoded = std::move(encoded);
      return;
    }
  kv_.push_back(Kv{std::string(key), std::move(encoded)});
}

template <class T>
static std::vector<uint8_t> scalar(GgufValueType t, T v) {
  std::vector<uint8_t> e;
  put_type(e, t);
  put_raw<T>(e, v);
  return e;
}

void GgufWriter::set_u32(std::string_view key, uint32_t v) { put(key, scalar(GgufValueType::UINT32, v)); }
void GgufWriter::set_i32(std::string_view key, int32_t v) { put(key, scalar(GgufValueType::INT32, v)); }
void GgufWriter::set_u64(std::string_view key, uint64_t v) { put(key, scalar(GgufValueType::UINT64, v)); }
void GgufWriter::set_f32(std::string_view key, float v) { put(key, scalar(GgufValueType::FLOAT32, v)); }
void GgufWriter::set_bool(std::string_view key, bool v) {
  put(key, scalar(GgufValueType::BOOL, static_cast<uint8_t>(v ? 1 : 0)));
}

void GgufWriter::set_string(std::string_view key, std::string_view v) {
  std::vector<uint8_t> e;
  put_type(e, GgufValueType::STRING);
  put_str(e, v);
  put(key, std::move(e));
}

void GgufWriter::set_array_string(std::string_view key, const std::vector<std::string>& v) {
  std::vector<uint8_t> e;
  put_type(e, GgufValueType::ARRAY);
  put_type(e, GgufValueType::STRING);
  put_raw<uint64_t>(e, v.size());
  for (auto& s : v) put_str(e, s);
  put(key, std::move(e));
}

void GgufWriter::set_array_i32(std::string_view key, const std::vector<int32_t>& v) {
  std::vector<uint8_t> e;
  put_type(e, GgufValueType::ARRAY);
  put_type(e, GgufValueType::INT32);
  put_raw<uint64_t>(e, v.size());
  for (int32_t x : v) put_raw<int32_t>(e, x);
  put(key, std::move(e));
}

void GgufWriter::set_array_f32(std::string_view key, const std::vector<float>& v) {
  std::vector<uint8_t> e;
  put_type(e, GgufValueType::ARRAY);
  put_type(e, GgufValueType::FLOAT32);
  put_raw<uint64_t>(e, v.size());
  for (float x : v) put_raw<float>(e, x);
  put(key, std::move(e));
}

void GgufWriter::copy_value(std::string_view key, const GgufValue& v) {
  std::vector<uint8_t> e;
  put_type(e, v.type_);
  encode_payload(e, v);
  put(key, std::move(e));
}

void GgufWriter::remove(std::string_view key) {
  for (auto it = kv_.begin(); it != kv_.end(); ++it)
    if (it->key == key) {
      kv_.erase(it);
      return;
    }
}

void GgufWriter::add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& ne, const void* data,
                            size_t nbytes) {
  const std::string what = "tensor " + std::string(name);
  for (auto& t : tensors_)
    if (t.name == name) throw Error("duplicate " + what);
  if (ne.empty() || ne.size() > 4) throw Error(what + ": needs 1 to 4 dimensions");
  TypeTraits tr = traits(type);
  int64_t n = 1;
  for (int64_t d : ne) {
    if (d < 1) throw Error(what + ": dimension " + std::to_string(d) + " < 1");
    if (__builtin_mul_overflow(n, d, &n)) throw Error(what + ": element count overflows");
  }
  if (ne[0] % tr.block_size != 0)
    throw Error(what + ": row length " + std::to_string(ne[0]) + " is not a multiple of the block size");
  size_t want;
  if (__builtin_mul_overflow(static_cast<size_t>(n / tr.block_size), tr.type_size, &want))
    throw Error(what + ": byte size overflows");
  if (nbytes != want)
    throw Error(what + ": " + std::to_string(nbytes) + " bytes given, " + std::to_string(want) + " expected");
  const uint8_t* p = static_cast<const uint8_t*>(data);
  tensors_.push_back(Tensor{std::string(name), type, ne, std::vector<uint8_t>(p, p + nbytes)});
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0 || alignment_ > (size_t{1} << 30))
    throw Error("GGUF alignment " + std::to_string(alignment_) + " is not a non-zero power of two");
  // general.alignment always states the alignment actually used (absent means 32).
  std::vector<Kv> kvs = kv_;
  bool have_align = false;
  for (auto& kv : kvs)
    if (kv.key == "general.alignment") {
      kv.encoded = scalar(GgufValueType::UINT32, static_cast<uint32_t>(alignment_));
      have_align = true;
    }
  if (!have_align && alignment_ != 32)
    kvs.push_back(Kv{"general.alignment", scalar(GgufValueType::UINT32, static_cast<uint32_t>(alignment_))});

  std::vector<uint8_t> out;
  put_raw<uint32_t>(out, 0x46554747u);  // "GGUF" read as a little-endian u32
  put_raw<uint32_t>(out, 3);
  put_raw<uint64_t>(out, tensors_.size());
  put_raw<uint64_t>(out, kvs.size());
  for (auto& kv : kvs) {
    put_str(out, kv.key);
    out.insert(out.end(), kv.encoded.begin(), kv.encoded.end());
  }
  size_t offset = 0;
  for (auto& t : tensors_) {
    put_str(out, t.name);
    put_raw<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) put_raw<uint64_t>(out, static_cast<uint64_t>(d));
    put_raw<uint32_t>(out, static_cast<uint32_t>(t.type));
    put_raw<uint64_t>(out, offset);
    offset = align_up(offset + t.data.size(), alignment_);
  }
  // Like gguf-py, a file without tensors ends right after its metadata (no padding to an empty data section).
  if (!tensors_.empty()) out.resize(align_up(out.size(), alignment_), 0);
  for (auto& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    out.resize(align_up(out.size(), alignment_), 0);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint8_t> bytes = to_bytes();
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(path + ": cannot create: " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(path + ": write failed: " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  int synced = ::fsync(fd);
  int err = errno;
  if (::close(fd) != 0 && synced == 0) {
    synced = -1;
    err = errno;
  }
  if (synced != 0) {
    ::unlink(tmp.c_str());
    throw Error(path + ": write failed: " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot rename into place: " + std::strerror(err));
  }
}

}  // namespace minnow
