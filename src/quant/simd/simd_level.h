#pragma once
// Which instruction-set path the quantized kernels use. Chosen at run time: the best the CPU supports, or
// the MINNOW_SIMD environment variable (scalar | avx2 | avx512), or set_simd_level() (tests).
#include <string>
#include <vector>

namespace minnow {

enum class SimdLevel { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* simd_level_name(SimdLevel l);
SimdLevel parse_simd_level(const std::string& s);  // throws Error on an unknown name
bool simd_level_supported(SimdLevel l);             // the CPU (and this build) can run it
SimdLevel simd_best_level();
std::vector<SimdLevel> simd_supported_levels();     // scalar first
// The active level: MINNOW_SIMD if set (Error if unknown or unsupported), else the best.
SimdLevel simd_level();
void set_simd_level(SimdLevel l);  // throws Error if unsupported

}  // namespace minnow
