#pragma once
// What the HTTP layer needs from a loaded model besides the Backend: tokenizer and chat template.
// The real implementation (tokenizer + Jinja chat template) lives with `minnow serve`; tests use fakes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace minnow::server {

class ServerModel {
 public:
  virtual ~ServerModel() = default;
  virtual std::string id() const = 0;  // model name for /v1/models and responses
  virtual int n_vocab() const = 0;
  // Tokens of `text`. add_special: BOS etc. as the model's metadata says; parse_special: control-token strings
  // in the text become control tokens.
  virtual std::vector<int32_t> tokenize(const std::string& text, bool add_special, bool parse_special) const = 0;
  virtual std::string token_to_piece(int32_t token) const = 0;  // raw bytes (may be part of a UTF-8 char)
  virtual bool is_eog(int32_t token) const = 0;                 // end of generation (EOS, EOT, ...)
  // The OpenAI `messages` array rendered through the model's chat template with the generation prompt, then
  // tokenized (template control tokens parsed, user text never). Throws minnow::Error on a bad conversation.
  virtual std::vector<int32_t> chat_prompt(const nlohmann::json& messages) const = 0;
  // Stops every chat-template render in progress and refuses new ones (server shutdown). A render is also
  // bounded by its own budgets (src/chat/jinja_budget.h), a few seconds at most.
  virtual void cancel_renders() {}
  // The most input bytes one token can stand for (0: unknown). A text of more than n_ctx times this many
  // bytes can never fit a context of n_ctx tokens, so it is refused without being tokenized.
  virtual size_t max_token_bytes() const { return 0; }
  // The byte length of the chat prompt chat_prompt() would tokenize (the rendered template), without
  // tokenizing it; 0: unknown.
  virtual size_t chat_prompt_bytes(const nlohmann::json& messages) const {
    (void)messages;
    return 0;
  }
};

}  // namespace minnow::server
