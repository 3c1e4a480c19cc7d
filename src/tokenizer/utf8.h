#pragma once
// UTF-8 helpers shared by the tokenizers and the streaming detokenizer.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace minnow::utf8 {

// Length of the sequence a lead byte announces, llama.cpp's lookup: continuation bytes count as 1.
inline size_t seq_len(uint8_t lead) {
  static constexpr uint8_t k[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return k[lead >> 4];
}

void append(std::string& out, uint32_t cpt);  // cpt encoded as UTF-8 (cpt <= 0x10FFFF; else U+FFFD)

// Decodes leniently the way llama.cpp does: a lead byte followed by the right number of continuation
// bytes gives a codepoint (no overlong/surrogate checks); anything else gives U+FFFD for one byte.
// Results above 0x10FFFF are also turned into U+FFFD, and so are surrogates (U+D800..U+DFFF) unless
// keep_surrogates (llama.cpp's tokenizer keeps them as code points).
std::vector<uint32_t> decode_lenient(std::string_view s, bool keep_surrogates = false);

// Strict validation: length of the valid UTF-8 sequence starting at s[i], or 0 if invalid there.
// Sets *incomplete when the bytes so far are a valid prefix cut short by the end of s.
size_t valid_seq_at(std::string_view s, size_t i, bool* incomplete);

// Copy of s where every byte that is not part of a valid UTF-8 sequence becomes U+FFFD.
std::string sanitize(std::string_view s);

}  // namespace minnow::utf8
