#include "common/npy.h"

#include <cstdio>
#include <memory>

#include "common/error.h"

namespace minnow {

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dict += std::to_string(shape[i]);
    if (shape.size() == 1 || i + 1 < shape.size()) dict += ",";
    if (i + 1 < shape.size()) dict += " ";
    count *= shape[i];
  }
  dict += "), }";
  // magic(6) + version(2) + header_len(2) + dict + padding + '\n' must be a multiple of 64.
  size_t total = 10 + dict.size() + 1;
  dict.append((64 - total % 64) % 64, ' ');
  dict += '\n';
  const uint16_t hlen = static_cast<uint16_t>(dict.size());

  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) throw Error("cannot write " + path);
  const unsigned char head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(hlen & 0xff),
                                  static_cast<unsigned char>(hlen >> 8)};
  bool ok = std::fwrite(head, 1, 10, f.get()) == 10 && std::fwrite(dict.data(), 1, dict.size(), f.get()) == dict.size();
  if (count > 0) ok = ok && std::fwrite(data, sizeof(float), static_cast<size_t>(count), f.get()) == static_cast<size_t>(count);
  if (!ok) throw Error("cannot write " + path);
}

}  // namespace minnow
