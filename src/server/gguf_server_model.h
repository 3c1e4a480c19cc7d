#pragma once
// ServerModel for a real GGUF model: its tokenizer and its chat template (tokenizer.chat_template, or ChatML
// when the file has none), through the chat module's injection-safe prompt builder (as `minnow chat` uses).
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "server/server_model.h"

namespace minnow {
class Tokenizer;
class GgufFile;
class ChatTemplate;
}  // namespace minnow

namespace minnow::server {

class GgufServerModel : public ServerModel {
 public:
  // `tok` and `gguf` must outlive this object. template_override: Jinja source to use instead of the model's.
  GgufServerModel(const Tokenizer& tok, const GgufFile& gguf, std::string id, const std::string& template_override = "");
  ~GgufServerModel() override;
  std::string id() const override { return id_; }
  int n_vocab() const override;
  std::vector<int32_t> tokenize(const std::string& text, bool add_special, bool parse_special) const override;
  std::string token_to_piece(int32_t token) const override;
  bool is_eog(int32_t token) const override;
  std::vector<int32_t> chat_prompt(const nlohmann::json& messages) const override;
  void cancel_renders() override { cancel_.store(true); }
  size_t max_token_bytes() const override { return max_token_bytes_; }
  size_t chat_prompt_bytes(const nlohmann::json& messages) const override;

 private:
  std::atomic<bool> cancel_{false};
  const Tokenizer& tok_;
  std::string id_;
  std::unique_ptr<ChatTemplate> tmpl_;
  size_t max_token_bytes_ = 0;
};

}  // namespace minnow::server
