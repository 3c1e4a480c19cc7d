// AVX2 + FMA + F16C kernels (selected at run time; compiled for those features whatever the build flags).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "quant/simd/qdot.h"
#include "quant/simd/qunpack.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>
#define QX_VNNI 0
#include "quant/simd/qdot_x86.inc"
#undef QX_VNNI
#pragma GCC pop_options

namespace minnow {
QTileFn qtile_avx2(GgmlType t) { return qtile_x86(t); }
}  // namespace minnow
#else
namespace minnow {
QTileFn qtile_avx2(GgmlType) { return nullptr; }
}  // namespace minnow
#endif
