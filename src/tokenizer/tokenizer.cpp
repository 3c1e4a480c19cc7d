#include "tokenizer/tokenizer.h"

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/special_split.h"
#include "tokenizer/spm.h"
#include "tokenizer/utf8.h"

namespace minnow {

namespace {

std::string escape_spaces(std::string_view s) {  // ' ' -> U+2581
  std::string out;
  out.reserve(s.size() + 8);
  for (char c : s) {
    if (c == ' ') {
      out += "\xE2\x96\x81";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string unescape_spaces(std::string_view s) {  // U+2581 -> ' '
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 3, "\xE2\x96\x81") == 0) {
      out.push_back(' ');
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// What llama.cpp's token_to_piece renders (special tokens included).
std::string render_piece(const Vocab& v, int32_t id) {
  const std::string& text = v.text[id];
  const uint32_t a = v.attr[id];
  if (a & (kAttrControl | kAttrUnknown | kAttrUserDefined)) return text;
  if (v.type == VocabType::SPM) {
    if (a & kAttrNormal) return unescape_spaces(text);
    if (a & kAttrByte) {  // "<0xNN>"
      if (text.size() >= 5 && hex_digit(text[3]) >= 0 && hex_digit(text[4]) >= 0)
        return std::string(1, static_cast<char>(hex_digit(text[3]) * 16 + hex_digit(text[4])));
      return {};
    }
    return {};
  }
  if (a & kAttrNormal) return byte_level::decode(text);
  return {};
}

// BPE works on code points as llama.cpp decodes them: invalid UTF-8 bytes become U+FFFD, but UTF-8-encoded
// surrogates (ED A0..BF xx) stay as they are. PCRE2 cannot match those, so the pre-tokenizer reads U+E000 in
// their place: like a surrogate, a private-use character is no letter, number, punctuation or space (llama.cpp
// gives both the same category), and it has the same three bytes, so the pieces' offsets hold for both texts.
struct BpeText {
  std::string bytes;      // what gets byte-level encoded and merged
  std::string for_regex;  // valid UTF-8 of the same length, for the pre-tokenizer
};

BpeText bpe_text(std::string_view text) {
  BpeText t;
  t.bytes.reserve(text.size());
  t.for_regex.reserve(text.size());
  for (uint32_t c : utf8::decode_lenient(text, /*keep_surrogates=*/true)) {
    utf8::append(t.bytes, c);
    utf8::append(t.for_regex, c >= 0xD800 && c <= 0xDFFF ? 0xE000 : c);
  }
  return t;
}

// The pre-tokenizer's pieces of t, as views into t.bytes.
std::vector<std::string_view> bpe_pieces(const PreTokenizer& pre, const BpeText& t) {
  std::vector<std::string_view> pieces = pre.split(t.for_regex);
  for (std::string_view& p : pieces) p = std::string_view(t.bytes).substr(p.data() - t.for_regex.data(), p.size());
  return pieces;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  return std::make_unique<Tokenizer>(Vocab::from_gguf(f));
}

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  if (vocab_.type == VocabType::BPE) {
    const PreTokenizerSpec* spec = find_pretokenizer(vocab_.pre);
    if (!spec) throw Error("unsupported pre-tokenizer '" + vocab_.pre + "' (tokenizer.ggml.pre)");
    pre_ = std::make_unique<PreTokenizer>(*spec);
  }
  pieces_.resize(vocab_.text.size());
  for (int32_t i = 0; i < vocab_.n_vocab(); ++i) pieces_[i] = render_piece(vocab_, i);
}

Tokenizer::~Tokenizer() = default;

void Tokenizer::encode_fragment(std::string_view text, bool space_prefix, std::vector<int32_t>& out) const {
  if (vocab_.type == VocabType::SPM) {
    std::string s = space_prefix ? escape_spaces(std::string(" ").append(text)) : escape_spaces(text);
    spm_encode(vocab_, s, out);
    return;
  }
  const BpeText clean = bpe_text(text);
  std::string word;
  for (std::string_view piece : bpe_pieces(*pre_, clean)) {
    word.clear();
    for (char c : piece) word += byte_level::encode_byte(static_cast<uint8_t>(c));
    bpe_encode_word(vocab_, word, out);
  }
}

std::vector<std::string> Tokenizer::pre_split(std::string_view text) const {
  std::vector<std::string> out;
  if (!pre_) {
    if (!text.empty()) out.emplace_back(text);
    return out;
  }
  const BpeText clean = bpe_text(text);
  for (std::string_view piece : bpe_pieces(*pre_, clean)) out.emplace_back(piece);
  return out;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && add_bos()) out.push_back(vocab_.bos);
  bool prev_special = true;  // SPM: a text fragment at the start or after a special token gets a space
  for (const Fragment& f : split_special(vocab_, text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
    } else {
      encode_fragment(f.text, vocab_.add_space_prefix && prev_special, out);
      prev_special = false;
    }
  }
  if (add_special && add_eos()) out.push_back(vocab_.eos);
  return out;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  if (!in_range(id)) throw Error("token id " + std::to_string(id) + " is out of range [0, " +
                                 std::to_string(n_vocab()) + ")");
  return vocab_.text[id];
}

std::string Tokenizer::token_to_piece(int32_t id) const { return token_to_piece(id, true); }

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  if (!in_range(id)) throw Error("token id " + std::to_string(id) + " is out of range [0, " +
                                 std::to_string(n_vocab()) + ")");
  if (!render_special && (vocab_.attr[id] & (kAttrControl | kAttrUnknown))) return {};
  return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (!in_range(id)) throw Error("token id " + std::to_string(id) + " is out of range [0, " +
                                   std::to_string(n_vocab()) + ")");
    if (!render_special && (vocab_.attr[id] & (kAttrControl | kAttrUnknown))) continue;
    out += pieces_[id];
  }
  return out;
}

std::optional<int32_t> Tokenizer::find(std::string_view token_text) const {
  const int32_t id = vocab_.find(token_text);
  if (id < 0) return std::nullopt;
  return id;
}

}  // namespace minnow
