#include "tokenizer/bpe.h"

#include <optional>

#include "tokenizer/pair_merge.h"
#include "tokenizer/vocab.h"

namespace minnow {

void bpe_encode_word(const Vocab& v, std::string_view word, std::vector<int32_t>& out) {
  if (word.empty()) return;
  if (v.ignore_merges) {
    const int32_t id = v.find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  // Lowest merge rank first.
  const auto pieces = merge_pairs(word, [&](std::string_view l, std::string_view r, std::string_view) {
    const int32_t rank = v.merge(l, r);
    return rank < 0 ? std::nullopt : std::optional<double>(-double(rank));
  });
  for (std::string_view piece : pieces) {
    const int32_t id = v.find(piece);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    // Not a token: each byte that is a token on its own (llama.cpp's fallback; others are dropped).
    for (char c : piece) {
      const int32_t b = v.find(std::string_view(&c, 1));
      if (b >= 0) out.push_back(b);
    }
  }
}

}  // namespace minnow
