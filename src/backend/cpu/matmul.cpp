// The CPU matrix product. Quantized weights: activations quantized to 8 bits once, integer kernels
// (src/quant/simd/qdot.h) for the chosen SIMD level, tiled over (row block x token block) for many tokens.
// Float weights (F32 / F16 / BF16): rows converted to f32 once, then a fixed-order 16-lane dot per token.
// MINNOW_ACT_BITS=16 adds a second 8-bit pass over the activations' rounding error (closer to exact).
// Both paths compute each (row, token) with the same operations whatever n_batch is (batch invariance).
#include "backend/cpu/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/thread_pool.h"
#include "quant/quant_ref.h"
#include "quant/simd/act_quant.h"
#include "quant/simd/qdot.h"

namespace minnow {

namespace {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// A growable 64-byte-aligned scratch buffer (one per calling thread).
struct Scratch {
  std::unique_ptr<uint8_t, FreeDeleter> p;
  size_t cap = 0;
  uint8_t* get(size_t n) {
    if (n > cap) {
      size_t c = std::max(n, cap * 3 / 2);
      c = (c + 63) & ~static_cast<size_t>(63);
      void* q = std::aligned_alloc(64, c);
      if (!q) throw Error("out of memory allocating " + std::to_string(c) + " bytes of matmul scratch");
      p.reset(static_cast<uint8_t*>(q));
      cap = c;
    }
    return p.get();
  }
};

void check_shape(GgmlType type, int64_t n_in, int64_t n_out, int64_t n_batch) {
  auto tr = type_traits(static_cast<uint32_t>(type));
  if (!tr || !tr->supported) throw Error("matmul: unsupported weight type " + std::to_string(static_cast<uint32_t>(type)));
  if (n_in <= 0 || n_out < 0 || n_batch < 0 || n_in % tr->block_size != 0)
    throw Error("matmul: bad shape n_in=" + std::to_string(n_in) + " for " + tr->name);
}

// sum_i w[i] * x[i] in a fixed order: 16 lane accumulators, then a fixed pairwise tree.
float dot_f32_fixed(const float* w, const float* x, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] = __builtin_fmaf(w[i + l], x[i + l], acc[l]);
  for (int l = 0; i < n; ++i, ++l) acc[l] = __builtin_fmaf(w[i], x[i], acc[l]);
  for (int s = 8; s > 0; s /= 2)
    for (int l = 0; l < s; ++l) acc[l] += acc[l + s];
  return acc[0];
}

void matmul_float(GgmlType type, const uint8_t* W, int64_t n_in, int64_t n_out, const float* x, float* y,
                  int64_t n_batch, ThreadPool& pool) {
  const size_t rb = row_bytes(type, n_in);
  pool.run_each([&](int t) {
    const int nt = pool.size();
    const int64_t r0 = n_out * t / nt, r1 = n_out * (t + 1) / nt;
    thread_local Scratch row_buf;
    float* wrow = reinterpret_cast<float*>(row_buf.get(static_cast<size_t>(n_in) * sizeof(float)));
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* src = W + static_cast<size_t>(r) * rb;
      const float* w;
      if (type == GgmlType::F32) {
        std::memcpy(wrow, src, static_cast<size_t>(n_in) * sizeof(float));
      } else {
        dequantize_row_ref(type, src, wrow, n_in);
      }
      w = wrow;
      for (int64_t b = 0; b < n_batch; ++b) y[b * n_out + r] = dot_f32_fixed(w, x + b * n_in, n_in);
    }
  });
}

}  // namespace

void matmul_ref(GgmlType type, const void* W, int64_t n_in, int64_t n_out, const float* x, float* y,
                int64_t n_batch) {
  const size_t rb = row_bytes(type, n_in);
  for (int64_t o = 0; o < n_out; ++o) {
    const void* row = static_cast<const uint8_t*>(W) + static_cast<size_t>(o) * rb;
    for (int64_t b = 0; b < n_batch; ++b)
      y[b * n_out + o] = static_cast<float>(dot_row_ref(type, row, x + b * n_in, n_in));
  }
}

void matmul_level(SimdLevel level, GgmlType type, const void* W, int64_t n_in, int64_t n_out, const float* x,
                  float* y, int64_t n_batch, ThreadPool& pool) {
  check_shape(type, n_in, n_out, n_batch);
  if (n_out == 0 || n_batch == 0) return;
  const auto* Wb = static_cast<const uint8_t*>(W);
  const QTileFn fn = qtile_kernel(type, level);
  if (!fn) {
    matmul_float(type, Wb, n_in, n_out, x, y, n_batch, pool);
    return;
  }
  const ActKind kind = act_kind(type);
  const bool two_pass = act_bits() == 16;
  const size_t ab = act_buffer_bytes(kind, n_in, n_batch);
  const size_t fb = static_cast<size_t>(n_batch) * static_cast<size_t>(std::max(n_in, n_out)) * sizeof(float);
  thread_local Scratch act_buf, act_buf2, f_buf;
  uint8_t* buf = act_buf.get(ab);
  // Two-pass activations: buf2 holds the 8-bit rounding error of buf, and tmp its product (also used for
  // the error itself before it is quantized).
  uint8_t* buf2 = two_pass ? act_buf2.get(ab) : nullptr;
  float* tmp = two_pass ? reinterpret_cast<float*>(f_buf.get(fb)) : nullptr;
  const int nt = pool.size();
  auto quantize_rows = [&](int64_t t0, int64_t t1) {
    act_quantize(kind, x, buf, n_in, n_batch, t0, t1);
    if (two_pass) {
      act_residual(kind, x, buf, tmp, n_in, n_batch, t0, t1);
      act_quantize(kind, tmp, buf2, n_in, n_batch, t0, t1);
    }
  };
  if (n_batch >= 4 * nt) {
    pool.run_each([&](int t) { quantize_rows(n_batch * t / nt, n_batch * (t + 1) / nt); });
  } else {
    quantize_rows(0, n_batch);
  }
  const ActQ act = act_view(kind, buf, n_in, n_batch);
  const ActQ act2 = two_pass ? act_view(kind, buf2, n_in, n_batch) : ActQ{};
  const size_t rs = row_bytes(type, n_in);

  // Work items: (token chunk, block of rows), token-chunk-major so a chunk of activations stays in cache;
  // threads take items from a shared counter, so a thread slowed by other load does not hold up the rest.
  const int64_t tok_chunk = std::min<int64_t>(kQTileMaxTok, n_batch);
  const int64_t n_tc = (n_batch + tok_chunk - 1) / tok_chunk;
  // One token streams weights: bigger row blocks mean fewer hand-offs (still >= 8 items per thread).
  int64_t row_block = n_batch == 1 ? std::max<int64_t>(16, (n_out / (8 * nt)) & ~int64_t{15}) : 16;
  row_block = std::min<int64_t>(row_block, 256);
  const int64_t n_rb = (n_out + row_block - 1) / row_block;
  const int64_t n_items = n_tc * n_rb;
  std::atomic<int64_t> next{0};
  pool.run_each([&](int) {
    for (;;) {
      const int64_t item = next.fetch_add(1, std::memory_order_relaxed);
      if (item >= n_items) break;
      const int64_t tc = item / n_rb, rb = item % n_rb;
      const int64_t t0 = tc * tok_chunk, nt_here = std::min(tok_chunk, n_batch - t0);
      const int64_t r0 = rb * row_block, nr = std::min(row_block, n_out - r0);
      fn(Wb + static_cast<size_t>(r0) * rs, rs, nr, act, t0, nt_here, y + t0 * n_out + r0, n_out);
      if (two_pass) {  // y += W . (rounding error), per element in a fixed order (batch invariant)
        fn(Wb + static_cast<size_t>(r0) * rs, rs, nr, act2, t0, nt_here, tmp + t0 * n_out + r0, n_out);
        for (int64_t t = t0; t < t0 + nt_here; ++t)
          for (int64_t r = r0; r < r0 + nr; ++r) y[t * n_out + r] += tmp[t * n_out + r];
      }
    }
  });
}

void matmul(GgmlType type, const void* W, int64_t n_in, int64_t n_out, const float* x, float* y,
            int64_t n_batch, ThreadPool& pool) {
  matmul_level(simd_level(), type, W, n_in, n_out, x, y, n_batch, pool);
}

}  // namespace minnow
