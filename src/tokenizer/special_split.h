#pragma once
// Splits text at occurrences of special-token texts (llama.cpp's tokenizer_st_partition): special tokens
// are tried longest first; each one splits every remaining text fragment at all its occurrences.
// Control and unknown tokens take part only when parse_special is set; user-defined tokens always do, unless
// they are control too (special_tokens.h says which).
#include <cstdint>
#include <string_view>
#include <vector>

namespace minnow {

struct Vocab;

struct Fragment {
  int32_t token;          // >= 0: a special token; -1: raw text
  std::string_view text;  // raw text (a view into the input) when token < 0
};

std::vector<Fragment> split_special(const Vocab& vocab, std::string_view text, bool parse_special);

}  // namespace minnow
