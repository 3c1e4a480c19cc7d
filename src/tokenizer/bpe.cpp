#include "tokenizer/bpe.h"

#include <queue>

#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

namespace minnow {

namespace {

struct Symbol {
  int prev, next;
  size_t off, len;  // byte range in the word; len 0 once merged away
};

struct Bigram {
  int left, right;
  int32_t rank;
  size_t len_left, len_right;  // the sizes the pair had when queued (a changed size means stale)
};

struct BigramOrder {  // priority_queue top = lowest rank, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

}  // namespace

void bpe_encode_word(const Vocab& v, std::string_view word, std::vector<int32_t>& out) {
  if (word.empty()) return;
  if (v.ignore_merges) {
    const int32_t id = v.find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> sym;
  sym.reserve(word.size());
  for (size_t off = 0; off < word.size();) {
    const size_t len = std::min(utf8::seq_len(static_cast<uint8_t>(word[off])), word.size() - off);
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, off + len == word.size() ? -1 : idx + 1, off, len});
    off += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int32_t rank = v.merge(word.substr(sym[left].off, sym[left].len), word.substr(sym[right].off, sym[right].len));
    if (rank < 0) return;
    queue.push({left, right, rank, sym[left].len, sym[right].len});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram bg = queue.top();
    queue.pop();
    Symbol& l = sym[bg.left];
    Symbol& r = sym[bg.right];
    // Stale if either side was merged away or has grown since (its text then differs).
    if (l.len == 0 || r.len == 0 || l.len != bg.len_left || r.len != bg.len_right || l.next != bg.right) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = bg.left;
    try_add(l.prev, bg.left);
    try_add(bg.left, l.next);
  }

  for (int i = 0; i != -1; i = sym[i].next) {
    std::string_view piece = word.substr(sym[i].off, sym[i].len);
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
