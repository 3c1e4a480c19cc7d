#include "backend/kv_reuse_check.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/error.h"

namespace minnow {
namespace {

class KvReuseCheck final : public Backend {
 public:
  KvReuseCheck(std::unique_ptr<Backend> inner, int n_seq_max)
      : inner_(std::move(inner)), held_(static_cast<size_t>(n_seq_max), 0) {}
  ~KvReuseCheck() override {
    std::fprintf(stderr, "kv reuse check: %zu tokens evaluated in %zu forward passes\n",
                 tokens_, passes_);
  }
  std::string name() const override { return inner_->name(); }
  size_t kv_cache_bytes() const override { return inner_->kv_cache_bytes(); }
  size_t weight_bytes() const override { return inner_->weight_bytes(); }
  int invariant_batch() const override { return inner_->invariant_batch(); }
  bool prefers_top() const override { return inner_->prefers_top(); }

  void seq_clear(int seq) override {
    if (seq >= 0 && static_cast<size_t>(seq) < held_.size() && held_[static_cast<size_t>(seq)] > 0)
      throw Error("kv reuse check: sequence " + std::to_string(seq) + " cleared while it holds " +
                  std::to_string(held_[static_cast<size_t>(seq)]) + " positions");
    inner_->seq_clear(seq);
  }
  void forward(const Batch& b, std::vector<float>& logits) override {
    check(b);
    inner_->forward(b, logits);
    commit(b);
  }
  void forward_top(const Batch& b, const std::vector<uint8_t>& top_only, std::vector<float>& logits,
                   std::vector<int32_t>& top) override {
    check(b);
    inner_->forward_top(b, top_only, logits, top);
    commit(b);
  }

 private:
  void check(const Batch& b) const {
    for (size_t i = 0; i < b.size(); ++i) {
      const size_t s = static_cast<size_t>(b.seq[i]);
      if (s < held_.size() && b.pos[i] < held_[s])
        throw Error("kv reuse check: position " + std::to_string(b.pos[i]) + " of sequence " + std::to_string(s) +
                    " recomputed (the cache already holds " + std::to_string(held_[s]) + " positions)");
    }
  }
  void commit(const Batch& b) {
    for (size_t i = 0; i < b.size(); ++i) {
      const size_t s = static_cast<size_t>(b.seq[i]);
      if (s < held_.size()) held_[s] = b.pos[i] + 1;
    }
    tokens_ += b.size();
    ++passes_;
  }

  std::unique_ptr<Backend> inner_;
  std::vector<int32_t> held_;  // [n_seq_max] positions computed so far in each slot
  size_t tokens_ = 0, passes_ = 0;
};

}  // namespace

std::unique_ptr<Backend> maybe_wrap_kv_reuse_check(std::unique_ptr<Backend> inner, int n_seq_max) {
  const char* env = std::getenv("MINNOW_CHECK_KV_REUSE");
  if (!env || !*env || std::string(env) == "0") return inner;
  return std::make_unique<KvReuseCheck>(std::move(inner), n_seq_max);
}

}  // namespace minnow
