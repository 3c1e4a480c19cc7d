#pragma once
// A small stand-in ServerModel for exercising the OpenAI request parsers without a real model: one token per
// byte (ids 0..255) plus BOS, EOS and two ChatML control tokens; chat prompts in ChatML.
#include <cstdint>
#include <string>
#include <vector>

#include "server/server_model.h"

namespace minnow::fuzzing {

class ByteModel : public server::ServerModel {
 public:
  static constexpr int32_t kBos = 256, kEos = 257, kImStart = 258, kImEnd = 259;
  std::string id() const override { return "byte-model"; }
  int n_vocab() const override { return 260; }
  std::vector<int32_t> tokenize(const std::string& text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> out;
    if (add_special) out.push_back(kBos);
    for (size_t i = 0; i < text.size();) {
      if (parse_special && text.compare(i, 12, "<|im_start|>") == 0) {
        out.push_back(kImStart);
        i += 12;
      } else if (parse_special && text.compare(i, 10, "<|im_end|>") == 0) {
        out.push_back(kImEnd);
        i += 10;
      } else {
        out.push_back(static_cast<unsigned char>(text[i++]));
      }
    }
    return out;
  }
  std::string token_to_piece(int32_t t) const override {
    if (t >= 0 && t < 256) return std::string(1, static_cast<char>(t));
    if (t == kImStart) return "<|im_start|>";
    if (t == kImEnd) return "<|im_end|>";
    return "";
  }
  bool is_eog(int32_t t) const override { return t == kEos || t == kImEnd; }
  size_t max_token_bytes() const override { return 12; }
  size_t chat_prompt_bytes(const nlohmann::json& messages) const override { return render(messages).size(); }
  std::vector<int32_t> chat_prompt(const nlohmann::json& messages) const override {
    return tokenize(render(messages), false, true);
  }

 private:
  static std::string render(const nlohmann::json& messages) {
    std::string s;
    for (const auto& m : messages)
      s += "<|im_start|>" + m.at("role").get<std::string>() + "\n" + m.at("content").get<std::string>() + "<|im_end|>\n";
    return s + "<|im_start|>assistant\n";
  }
};

}  // namespace minnow::fuzzing
