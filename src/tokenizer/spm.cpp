#include "tokenizer/spm.h"

#include <cstdio>
#include <queue>
#include <string>

#include "tokenizer/utf8.h"
#include "tokenizer/vocab.h"

namespace minnow {

namespace {

struct Symbol {
  int prev, next;
  size_t off, len;  // byte range in the text; len 0 once merged away
};

struct Bigram {
  int left, right;
  float score;
  size_t len;
};

struct BigramOrder {  // priority_queue top = highest score, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

int32_t byte_token(const Vocab& v, uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "<0x%02X>", b);
  int32_t id = v.find(buf);
  if (id >= 0) return id;
  id = v.find(std::string_view(reinterpret_cast<const char*>(&b), 1));
  return id >= 0 ? id : v.unk;
}

}  // namespace

void spm_encode(const Vocab& v, std::string_view text, std::vector<int32_t>& out) {
  if (text.empty()) return;
  std::vector<Symbol> sym;
  sym.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(utf8::seq_len(static_cast<uint8_t>(text[off])), text.size() - off);
    const int idx = static_cast<int>(sym.size());
    sym.push_back({idx - 1, off + len == text.size() ? -1 : idx + 1, off, len});
    off += len;
  }

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    std::string_view piece = text.substr(sym[left].off, sym[left].len + sym[right].len);
    const int32_t id = v.find(piece);
    if (id < 0) return;
    queue.push({left, right, v.score[id], piece.size()});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram bg = queue.top();
    queue.pop();
    Symbol& l = sym[bg.left];
    Symbol& r = sym[bg.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != bg.len) continue;  // stale
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = bg.left;
    try_add(l.prev, bg.left);
    try_add(bg.left, l.next);
  }

  // Every merge produced a token, so a final symbol is either a token or a single character that is
  // not one; the latter falls back to byte tokens.
  for (int i = 0; i != -1; i = sym[i].next) {
    std::string_view piece = text.substr(sym[i].off, sym[i].len);
    const int32_t id = v.find(piece);
    if (id >= 0) {
      out.push_back(id);
    } else {
      for (char c : piece) {
        const int32_t b = byte_token(v, static_cast<uint8_t>(c));
        if (b >= 0) out.push_back(b);  // a vocabulary without byte tokens nor <unk> drops the byte
      }
    }
  }
}

}  // namespace minnow
