#include "tokenizer/byte_level.h"

#include <array>
#include <vector>

#include "tokenizer/utf8.h"

namespace minnow::byte_level {

namespace {

struct Tables {
  std::array<std::string, 256> enc;  // byte -> UTF-8 of its codepoint
  std::array<int16_t, 324> dec;      // codepoint (< 324) -> byte, or -1
  Tables() {
    dec.fill(-1);
    uint32_t extra = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cpt = printable ? b : extra++;
      utf8::append(enc[b], cpt);
      dec[cpt] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

const std::string& encode_byte(uint8_t b) { return tables().enc[b]; }

std::string encode(std::string_view bytes) {
  const Tables& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.enc[static_cast<uint8_t>(c)];
  return out;
}

std::string decode(std::string_view text) {
  const Tables& t = tables();
  std::string out;
  out.reserve(text.size());
  for (uint32_t cpt : utf8::decode_lenient(text)) {
    if (cpt < t.dec.size() && t.dec[cpt] >= 0) {
      out.push_back(static_cast<char>(t.dec[cpt]));
    } else {
      utf8::append(out, cpt);
    }
  }
  return out;
}

}  // namespace minnow::byte_level
