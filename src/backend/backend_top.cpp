// Backend::forward_top's host version (and the ordering every backend's version follows).
#include <cstring>
#include <string>

#include "backend/backend.h"
#include "common/error.h"

namespace minnow {

namespace {
// a before b: higher logit, then lower id (NaN never before anything)
bool before(float va, int32_t ia, float vb, int32_t ib) { return va > vb || (va == vb && ia < ib); }
}  // namespace

void top_ids(const float* row, int64_t n_vocab, int32_t* out) {
  constexpr int K = Backend::kTopIds;
  float val[K];
  int n = 0;
  for (int64_t i = 0; i < n_vocab; ++i) {
    const float v = row[i];
    if (v != v) continue;  // NaN
    const int32_t id = static_cast<int32_t>(i);
    if (n == K && !before(v, id, val[K - 1], out[K - 1])) continue;
    int k = n < K ? n++ : K - 1;  // insertion point search from the end
    while (k > 0 && before(v, id, val[k - 1], out[k - 1])) {
      val[k] = val[k - 1];
      out[k] = out[k - 1];
      --k;
    }
    val[k] = v;
    out[k] = id;
  }
  for (int k = n; k < K; ++k) out[k] = -1;
}

void check_top_flags(const Batch& batch, const std::vector<uint8_t>& top_only) {
  size_t wanted = 0;
  for (uint8_t w : batch.want_logits) wanted += w ? 1 : 0;
  if (top_only.size() != wanted)
    throw Error("forward_top: " + std::to_string(top_only.size()) + " flags for " + std::to_string(wanted) +
                " wanted rows");
}

void Backend::forward_top(const Batch& batch, const std::vector<uint8_t>& top_only, std::vector<float>& logits,
                          std::vector<int32_t>& top) {
  check_top_flags(batch, top_only);
  const size_t wanted = top_only.size();
  std::vector<float> all;
  forward(batch, all);
  if (wanted == 0) return;
  const size_t V = all.size() / wanted;
  for (size_t r = 0; r < wanted; ++r) {
    const float* row = all.data() + r * V;
    const size_t at = top.size();
    top.resize(at + kTopIds);
    top_ids(row, static_cast<int64_t>(V), top.data() + at);
    if (!top_only[r]) logits.insert(logits.end(), row, row + V);
  }
}

}  // namespace minnow
