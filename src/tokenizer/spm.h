#pragma once
// SentencePiece (llama.cpp "SPM") encoding of one text fragment: characters are merged pairwise, always
// the adjacent pair whose concatenation is the highest-scoring token (ties: leftmost), until no pair
// forms a token; pieces that are not tokens fall back to <0xNN> byte tokens.
#include <cstdint>
#include <string_view>
#include <vector>

namespace minnow {

struct Vocab;

// text: already whitespace-escaped (spaces as U+2581) and space-prefixed as needed.
void spm_encode(const Vocab& vocab, std::string_view text, std::vector<int32_t>& out);

}  // namespace minnow
