// AVX-512 (F/BW/VL/DQ) + VNNI kernels (selected at run time; compiled for those features whatever the
// build flags).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "quant/simd/qdot.h"
#include "quant/simd/qunpack.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
#include <immintrin.h>
#define QX_VNNI 1
// GCC 12 reports its own intrinsics' deliberately undefined upper halves as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "quant/simd/qdot_x86.inc"
#pragma GCC diagnostic pop
#undef QX_VNNI
#pragma GCC pop_options

namespace minnow {
QTileFn qtile_avx512(GgmlType t) { return qtile_x86(t); }
}  // namespace minnow
#else
namespace minnow {
QTileFn qtile_avx512(GgmlType) { return nullptr; }
}  // namespace minnow
#endif
