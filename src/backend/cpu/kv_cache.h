#pragma once
// F16 key/value cache: for every layer and sequence slot, n_ctx positions of n_head_kv * head_dim values.
// Memory comes from calloc, so untouched pages cost nothing until a position is written.
#include <cstddef>
#include <cstdint>
#include <memory>

namespace minnow {

class KvCache {
 public:
  KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t k_dim, int64_t v_dim);  // throws Error
  size_t bytes() const { return bytes_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t k_dim() const { return k_dim_; }
  int64_t v_dim() const { return v_dim_; }
  // Row of position pos of sequence seq in layer l.
  uint16_t* k(int64_t l, int64_t seq, int64_t pos) { return k_.get() + ((l * n_seq_ + seq) * n_ctx_ + pos) * k_dim_; }
  uint16_t* v(int64_t l, int64_t seq, int64_t pos) { return v_.get() + ((l * n_seq_ + seq) * n_ctx_ + pos) * v_dim_; }

 private:
  struct Free { void operator()(uint16_t* p) const; };
  int64_t n_layer_, n_seq_, n_ctx_, k_dim_, v_dim_;
  size_t bytes_ = 0;
  std::unique_ptr<uint16_t, Free> k_;  // [n_layer][n_seq][n_ctx][k_dim] f16
  std::unique_ptr<uint16_t, Free> v_;  // [n_layer][n_seq][n_ctx][v_dim] f16
};

}  // namespace minnow
