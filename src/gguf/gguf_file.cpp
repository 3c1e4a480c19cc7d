// GgufFile: maps a file (or takes an in-memory image), hands it to the parser, and answers lookups.
#include "gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "gguf/gguf_parser.h"

namespace minnow {

namespace {
// Closes a descriptor on every path out of open().
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = path;
  // O_NONBLOCK: opening a FIFO must not hang; it is then rejected as not a regular file.
  Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) throw Error(path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  if (st.st_size == 0) throw Error(path + ": file is empty");
  if (static_cast<uint64_t>(st.st_size) < GgufParser::kMinHeader)
    throw Error(path + ": file too small for a GGUF header (" + std::to_string(st.st_size) + " bytes)");
  size_t size = static_cast<size_t>(st.st_size);
  void* m = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (m == MAP_FAILED) throw Error(path + ": cannot mmap: " + std::strerror(errno));
  f->map_ = static_cast<const uint8_t*>(m);
  f->size_ = size;
  f->mapped_ = true;  // from here on the destructor unmaps, also when parsing throws
  GgufParser(*f).parse();
  return f;
}

std::unique_ptr<GgufFile> GgufFile::open_memory(std::vector<uint8_t> bytes, const std::string& name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = name;
  if (bytes.empty()) throw Error(name + ": file is empty");
  if (bytes.size() < GgufParser::kMinHeader)
    throw Error(name + ": file too small for a GGUF header (" + std::to_string(bytes.size()) + " bytes)");
  f->owned_ = std::move(bytes);
  f->map_ = f->owned_.data();
  f->size_ = f->owned_.size();
  GgufParser(*f).parse();
  return f;
}

GgufFile::~GgufFile() {
  if (mapped_ && map_) ::munmap(const_cast<uint8_t*>(map_), size_);
}

const GgufValue* GgufFile::find(std::string_view key) const {
  for (auto& [k, v] : kv_)
    if (k == key) return &v;
  return nullptr;
}

// Wraps a type error with the key's name so the message says which key is wrong.
template <class F>
static auto with_key(std::string_view key, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error("metadata key " + std::string(key) + ": " + e.what());
  }
}

std::optional<int64_t> GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  return with_key(key, [&] { return v->as_int(); });
}

std::optional<double> GgufFile::get_float(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  return with_key(key, [&] { return v->as_float(); });
}

std::optional<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  return with_key(key, [&] { return v->as_bool(); });
}

std::optional<std::string_view> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  return with_key(key, [&] { return v->as_string(); });
}

int64_t GgufFile::require_int(std::string_view key) const {
  auto v = get_int(key);
  if (!v) throw Error("missing metadata key " + std::string(key));
  return *v;
}

double GgufFile::require_float(std::string_view key) const {
  auto v = get_float(key);
  if (!v) throw Error("missing metadata key " + std::string(key));
  return *v;
}

std::string_view GgufFile::require_string(std::string_view key) const {
  auto v = get_string(key);
  if (!v) throw Error("missing metadata key " + std::string(key));
  return *v;
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace minnow
