#pragma once
// Minimal NumPy .npy (format 1.0) writer for float32 arrays, C order. Throws Error on I/O failure.
#include <cstdint>
#include <string>
#include <vector>

namespace minnow {

// shape: e.g. {rows, cols}; data holds product(shape) floats.
void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

}  // namespace minnow
