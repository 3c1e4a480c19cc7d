// Initial (scalar) implementation; the SIMD kernels replace the body of matmul().
#include "backend/cpu/matmul.h"

#include <vector>

#include "common/thread_pool.h"
#include "quant/quant_ref.h"

namespace minnow {

void matmul_ref(GgmlType type, const void* W, int64_t n_in, int64_t n_out, const float* x, float* y,
                int64_t n_batch) {
  const size_t rb = row_bytes(type, n_in);
  for (int64_t o = 0; o < n_out; ++o) {
    const void* row = static_cast<const uint8_t*>(W) + static_cast<size_t>(o) * rb;
    for (int64_t b = 0; b < n_batch; ++b)
      y[b * n_out + o] = static_cast<float>(dot_row_ref(type, row, x + b * n_in, n_in));
  }
}

void matmul(GgmlType type, const void* W, int64_t n_in, int64_t n_out, const float* x, float* y,
            int64_t n_batch, ThreadPool& pool) {
  const size_t rb = row_bytes(type, n_in);
  pool.parallel_for(n_out, [&](int64_t begin, int64_t end, int) {
    std::vector<float> wrow(static_cast<size_t>(n_in));
    for (int64_t o = begin; o < end; ++o) {
      dequantize_row_ref(type, static_cast<const uint8_t*>(W) + static_cast<size_t>(o) * rb, wrow.data(), n_in);
      for (int64_t b = 0; b < n_batch; ++b) {
        const float* xb = x + b * n_in;
        double acc = 0;
        for (int64_t i = 0; i < n_in; ++i) acc += static_cast<double>(wrow[i]) * xb[i];
        y[b * n_out + o] = static_cast<float>(acc);
      }
    }
  });
}

}  // namespace minnow
