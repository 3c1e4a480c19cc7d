#include "backend/cpu/kv_cache.h"

#include <cstdlib>
#include <string>

#include "common/error.h"

namespace minnow {

void KvCache::Free::operator()(uint16_t* p) const { std::free(p); }

KvCache::KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t k_dim, int64_t v_dim)
    : n_layer_(n_layer), n_seq_(n_seq), n_ctx_(n_ctx), k_dim_(k_dim), v_dim_(v_dim) {
  if (n_layer <= 0 || n_seq <= 0 || n_ctx <= 0 || k_dim <= 0 || v_dim <= 0)
    throw Error("invalid KV cache dimensions");
  size_t cells = 0, nk = 0, nv = 0;
  if (__builtin_mul_overflow(static_cast<size_t>(n_layer), static_cast<size_t>(n_seq), &cells) ||
      __builtin_mul_overflow(cells, static_cast<size_t>(n_ctx), &cells) ||
      __builtin_mul_overflow(cells, static_cast<size_t>(k_dim), &nk) ||
      __builtin_mul_overflow(cells, static_cast<size_t>(v_dim), &nv) || nk > (SIZE_MAX / 8) || nv > (SIZE_MAX / 8))
    throw Error("KV cache size overflows (context or parallel slots too large)");
  bytes_ = (nk + nv) * sizeof(uint16_t);
  k_.reset(static_cast<uint16_t*>(std::calloc(nk, sizeof(uint16_t))));
  v_.reset(static_cast<uint16_t*>(std::calloc(nv, sizeof(uint16_t))));
  if (!k_ || !v_)
    throw Error("cannot allocate the KV cache (" + std::to_string(bytes_ >> 20) + " MiB); use a smaller -c");
}

}  // namespace minnow
