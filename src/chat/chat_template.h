#pragma once
// A model's chat template: the Jinja source from tokenizer.chat_template (or the documented ChatML default
// when the model has none), with bos_token/eos_token texts taken from the vocab, rendered as Hugging Face
// does (variables: messages, add_generation_prompt, bos_token, eos_token, tools=None unless given).
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "chat/jinja.h"

namespace minnow {

class GgufFile;

// Used when the model carries no tokenizer.chat_template.
inline constexpr const char* kChatMLTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// Reads a template file: a regular file of at most kMaxTemplateFileBytes, else a clear Error (directories,
// FIFOs and devices such as /dev/zero are refused, not read).
inline constexpr size_t kMaxTemplateFileBytes = 1u << 20;
std::string read_template_file(const std::string& path);

// Throws Error when j nests deeper than max_depth (checked without recursion, before anything copies j).
void check_json_depth(const nlohmann::ordered_json& j, int max_depth = jinja::kMaxJsonDepth);

class ChatTemplate {
 public:
  ChatTemplate(std::string source, std::string bos_token, std::string eos_token);
  // The model's template (or ChatML), unless template_source is non-empty.
  static ChatTemplate from_model(const GgufFile& f, const std::string& template_source = "");

  // messages: a JSON array of {"role", "content", ...}. extra: more variables (e.g. "tools"), may be null.
  // limits: the render's budgets (jinja_budget.h), e.g. a cancellation flag the server sets.
  std::string apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                    const nlohmann::ordered_json* extra = nullptr,
                    const jinja::RenderLimits& limits = jinja::RenderLimits()) const;

  const std::string& source() const { return source_; }
  const std::string& bos_token() const { return bos_; }
  const std::string& eos_token() const { return eos_; }
  bool is_default() const { return source_ == kChatMLTemplate; }

 private:
  std::string source_, bos_, eos_;
  std::shared_ptr<jinja::Template> tmpl_;
};

}  // namespace minnow
