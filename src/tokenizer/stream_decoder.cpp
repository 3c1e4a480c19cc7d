#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace minnow {

std::string StreamDecoder::push(int32_t id) { return push_bytes(tok_.token_to_piece(id)); }

std::string StreamDecoder::push_bytes(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    bool incomplete = false;
    const size_t len = utf8::valid_seq_at(pending_, i, &incomplete);
    if (len > 0) {
      out.append(pending_, i, len);
      i += len;
    } else if (incomplete) {
      break;  // hold back: later bytes may complete it
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = utf8::sanitize(pending_);
  pending_.clear();
  return out;
}

}  // namespace minnow
