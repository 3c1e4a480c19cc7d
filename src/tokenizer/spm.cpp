#include "tokenizer/spm.h"

#include <cstdio>
#include <optional>
#include <string>

#include "tokenizer/pair_merge.h"
#include "tokenizer/vocab.h"

namespace minnow {

namespace {

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
  // Highest score of the merged piece first; a pair merges only into a token.
  const auto pieces = merge_pairs(text, [&](std::string_view, std::string_view, std::string_view both) {
    const int32_t id = v.find(both);
    return id < 0 ? std::nullopt : std::optional<double>(v.score[id]);
  });

  // Every merge produced a token, so a final symbol is either a token or a single character that is
  // not one; the latter falls back to byte tokens.
  for (std::string_view piece : pieces) {
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
