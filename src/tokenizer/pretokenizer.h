#pragma once
// Byte-level BPE pre-tokenization: the text is split by a sequence of regexes chosen by
// tokenizer.ggml.pre. Each regex is applied to every piece the previous ones produced; both its matches
// and the unmatched runs between them become pieces (llama.cpp's unicode_regex_split semantics).
// Regexes run in PCRE2 with UTF + UCP (Unicode \s, \p{L}, \p{N}) and JIT.
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace minnow {

struct PreTokenizerSpec {
  const char* names;                 // '|'-separated tokenizer.ggml.pre values
  std::vector<const char*> regexes;  // applied in order
  bool add_bos = false;              // llama.cpp's add-BOS default for this pre-tokenizer
  bool ignore_merges = false;        // a piece that is already a token skips merging
};

// nullptr when the name is not supported.
const PreTokenizerSpec* find_pretokenizer(std::string_view pre);

class PreTokenizer {
 public:
  explicit PreTokenizer(const PreTokenizerSpec& spec);  // throws Error if a regex does not compile
  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;
  // text must be valid UTF-8. Returns the pieces (concatenated, they give back text). Thread-safe.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace minnow
