#include "backend/cpu/kv_cache.h"

#include <cstdlib>
#include <string>

#include "common/error.h"

namespace minnow {

void KvCache::Free::operator()(uint16_t* p) const { std::free(p); }

KvCache::KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t k_dim, int64_t v_dim, std::vector<int64_t> cap)
    : n_layer_(n_layer), n_seq_(n_seq), n_ctx_(n_ctx), k_dim_(k_dim), v_dim_(v_dim), cap_(std::move(cap)) {
  if (n_layer <= 0 || n_seq <= 0 || n_ctx <= 0 || k_dim <= 0 || v_dim <= 0)
    throw Error("invalid KV cache dimensions");
  if (cap_.empty()) cap_.assign(static_cast<size_t>(n_layer), n_ctx);
  if (static_cast<int64_t>(cap_.size()) != n_layer) throw Error("invalid KV cache dimensions");
  size_t rows = 0, nk = 0, nv = 0;
  for (int64_t l = 0; l < n_layer; ++l) {
    const int64_t c = cap_[static_cast<size_t>(l)];
    if (c <= 0 || c > n_ctx) throw Error("invalid KV cache dimensions");
    first_row_.push_back(static_cast<int64_t>(rows));
    size_t layer_rows = 0;
    if (__builtin_mul_overflow(static_cast<size_t>(n_seq), static_cast<size_t>(c), &layer_rows) ||
        __builtin_add_overflow(rows, layer_rows, &rows))
      throw Error("KV cache size overflows (context or parallel slots too large)");
  }
  if (__builtin_mul_overflow(rows, static_cast<size_t>(k_dim), &nk) ||
      __builtin_mul_overflow(rows, static_cast<size_t>(v_dim), &nv) || nk > (SIZE_MAX / 8) || nv > (SIZE_MAX / 8) ||
      rows > static_cast<size_t>(INT64_MAX / 2))
    throw Error("KV cache size overflows (context or parallel slots too large)");
  bytes_ = (nk + nv) * sizeof(uint16_t);
  k_.reset(static_cast<uint16_t*>(std::calloc(nk, sizeof(uint16_t))));
  v_.reset(static_cast<uint16_t*>(std::calloc(nv, sizeof(uint16_t))));
  if (!k_ || !v_)
    throw Error("cannot allocate the KV cache (" + std::to_string(bytes_ >> 20) + " MiB); use a smaller -c");
}

}  // namespace minnow
