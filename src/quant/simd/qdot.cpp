#include "quant/simd/qdot.h"

namespace minnow {

QTileFn qtile_kernel(GgmlType t, SimdLevel l) {
  QTileFn f = nullptr;
  if (l == SimdLevel::Avx512) f = qtile_avx512(t);
  if (!f && l >= SimdLevel::Avx2) f = qtile_avx2(t);
  if (!f) f = qtile_scalar(t);
  return f;
}

}  // namespace minnow
