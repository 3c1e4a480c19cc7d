#pragma once
// Byte-level BPE encoding of one pre-tokenized word: start from its characters and repeatedly merge the
// adjacent pair with the lowest merge rank (ties: leftmost) until no ranked pair is left.
#include <cstdint>
#include <string_view>
#include <vector>

namespace minnow {

struct Vocab;

// word: already byte-level encoded (byte_level::encode).
void bpe_encode_word(const Vocab& vocab, std::string_view word, std::vector<int32_t>& out);

}  // namespace minnow
