#pragma once
// Bounded reads of user-named input files (texts to tokenize or score): only regular files are read, and
// never more than a size cap, so `-f /dev/zero`, a FIFO or a directory gives a one-line Error instead of
// growing without bound or silently reading nothing.
#include <cstddef>
#include <string>

namespace minnow {

inline constexpr size_t kMaxInputFileBytes = size_t{256} << 20;  // 256 MiB

// The whole file's bytes. Throws Error when the path cannot be opened, is not a regular file (directory,
// FIFO, device, socket), or holds more than max_bytes (also when it grows past that while being read).
std::string read_input_file(const std::string& path, size_t max_bytes = kMaxInputFileBytes);

}  // namespace minnow
