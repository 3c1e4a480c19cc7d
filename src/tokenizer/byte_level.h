#pragma once
// GPT-2 byte-level encoding: each byte maps to one printable codepoint so that byte strings can be
// stored as text tokens. Printable Latin-1 bytes map to themselves; the others to U+0100 upwards.
#include <cstdint>
#include <string>
#include <string_view>

namespace minnow::byte_level {

const std::string& encode_byte(uint8_t b);  // UTF-8 of the codepoint that stands for byte b
std::string encode(std::string_view bytes);  // each byte -> its codepoint
// Inverse: each codepoint that stands for a byte becomes that byte; other codepoints are kept as UTF-8.
std::string decode(std::string_view text);

}  // namespace minnow::byte_level
