#pragma once
// Greedy pair merging, the core shared by byte-level BPE (bpe.cpp) and SentencePiece (spm.cpp): start from the
// UTF-8 characters of `text`, repeatedly merge the adjacent pair with the highest priority (ties: leftmost)
// and queue the pairs the merged piece forms with its neighbours, until no pair the caller accepts is left. A
// queued pair is stale once either side has changed since.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

#include "tokenizer/utf8.h"

namespace minnow {

// priority(left, right, both) -> std::optional<double>: nullopt if the two adjacent pieces cannot merge, else
// its priority (higher merges first). Returns the final pieces of text, in order.
template <class Priority>
std::vector<std::string_view> merge_pairs(std::string_view text, Priority priority) {
  struct Symbol {
    int prev, next;
    size_t off, len;  // byte range in text; len 0 once merged away
  };
  struct Pair {
    int left, right;
    double prio;
    size_t len_left, len_right;  // the sizes the pair had when queued (a changed size means stale)
  };
  struct Order {  // priority_queue top = highest priority, then leftmost
    bool operator()(const Pair& a, const Pair& b) const {
      return a.prio < b.prio || (a.prio == b.prio && a.left > b.left);
    }
  };
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(utf8::seq_len(static_cast<uint8_t>(text[off])), text.size() - off);
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, off + len == text.size() ? -1 : idx + 1, off, len});
    off += len;
  }
  std::priority_queue<Pair, std::vector<Pair>, Order> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const Symbol &l = sym[left], &r = sym[right];
    const std::optional<double> p =
        priority(text.substr(l.off, l.len), text.substr(r.off, r.len), text.substr(l.off, l.len + r.len));
    if (p) queue.push({left, right, *p, l.len, r.len});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!queue.empty()) {
    const Pair pr = queue.top();
    queue.pop();
    Symbol& l = sym[pr.left];
    Symbol& r = sym[pr.right];
    if (l.len == 0 || r.len == 0 || l.len != pr.len_left || r.len != pr.len_right || l.next != pr.right) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = pr.left;
    try_add(l.prev, pr.left);
    try_add(pr.left, l.next);
  }
  std::vector<std::string_view> pieces;
  if (!sym.empty())
    for (int i = 0; i != -1; i = sym[i].next) pieces.push_back(text.substr(sym[i].off, sym[i].len));
  return pieces;
}

}  // namespace minnow
