#pragma once
// F16 key/value cache: for every layer and sequence slot, a ring of cap(l) positions of n_head_kv * head_dim
// values; position p lives in row p % cap(l). Full-attention layers have cap = n_ctx (so the rows of positions
// [0, p] are contiguous); sliding-window layers keep only their last cap < n_ctx positions (issue 12: no KV
// for positions such a layer can no longer see). Memory comes from calloc, so untouched pages cost nothing
// until a position is written.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace minnow {

class KvCache {
 public:
  // cap[l]: positions kept for layer l (1 <= cap[l] <= n_ctx); empty: n_ctx for every layer. Throws Error.
  KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t k_dim, int64_t v_dim,
          std::vector<int64_t> cap = {});
  size_t bytes() const { return bytes_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t k_dim() const { return k_dim_; }
  int64_t v_dim() const { return v_dim_; }
  int64_t cap(int64_t l) const { return cap_[static_cast<size_t>(l)]; }
  // Row of position pos of sequence seq in layer l.
  uint16_t* k(int64_t l, int64_t seq, int64_t pos) { return k_.get() + row(l, seq, pos) * k_dim_; }
  uint16_t* v(int64_t l, int64_t seq, int64_t pos) { return v_.get() + row(l, seq, pos) * v_dim_; }

 private:
  size_t row(int64_t l, int64_t seq, int64_t pos) const {
    const int64_t c = cap_[static_cast<size_t>(l)];
    return static_cast<size_t>(first_row_[static_cast<size_t>(l)] + seq * c + pos % c);
  }
  struct Free { void operator()(uint16_t* p) const; };
  int64_t n_layer_, n_seq_, n_ctx_, k_dim_, v_dim_;
  std::vector<int64_t> cap_;        // [n_layer]
  std::vector<int64_t> first_row_;  // [n_layer] first row of layer l: sum over earlier layers of n_seq * cap
  size_t bytes_ = 0;
  std::unique_ptr<uint16_t, Free> k_;  // rows of k_dim f16: layer-major, then slot, then ring row
  std::unique_ptr<uint16_t, Free> v_;  // rows of v_dim f16, same order
};

}  // namespace minnow
