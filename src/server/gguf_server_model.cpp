#include "server/gguf_server_model.h"

#include <algorithm>

#include "chat/chat_prompt.h"
#include "chat/chat_template.h"
#include "chat/jinja_budget.h"
#include "common/error.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace minnow::server {

GgufServerModel::GgufServerModel(const Tokenizer& tok, const GgufFile& gguf, std::string id,
                                   const std::string& template_override)
    : tok_(tok), id_(std::move(id)),
      tmpl_(std::make_unique<ChatTemplate>(ChatTemplate::from_model(gguf, template_override))) {
  // A token stands for at most its rendered bytes or its text (control / user-defined tokens matched in the
  // input); an unknown character (at most 4 bytes of UTF-8) becomes one <unk>. The tokenizer never shrinks
  // its input (invalid UTF-8 becomes U+FFFD, which is no shorter), so this bounds bytes per token.
  max_token_bytes_ = 4;
  for (int32_t id = 0; id < tok_.n_vocab(); ++id)
    max_token_bytes_ = std::max({max_token_bytes_, tok_.token_to_piece(id).size(), tok_.token_text(id).size()});
}

GgufServerModel::~GgufServerModel() = default;

int GgufServerModel::n_vocab() const { return tok_.n_vocab(); }

std::vector<int32_t> GgufServerModel::tokenize(const std::string& text, bool add_special, bool parse_special) const {
  return tok_.encode(text, add_special, parse_special);
}

std::string GgufServerModel::token_to_piece(int32_t token) const { return tok_.token_to_piece(token); }

bool GgufServerModel::is_eog(int32_t token) const { return tok_.is_eog(token); }

namespace {

// The messages as ordered_json (what the template takes): strings are moved over as they are, without the
// serialise-and-parse round trip that costs most for long contents.
nlohmann::ordered_json ordered_messages(const nlohmann::json& messages) {
  if (!messages.is_array()) return nlohmann::ordered_json::parse(messages.dump());
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& m : messages) {
    if (!m.is_object()) {
      out.push_back(nlohmann::ordered_json::parse(m.dump()));
      continue;
    }
    nlohmann::ordered_json o = nlohmann::ordered_json::object();
    for (const auto& [k, v] : m.items())
      o[k] = v.is_string() ? nlohmann::ordered_json(v.get_ref<const std::string&>()) : nlohmann::ordered_json::parse(v.dump());
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

std::vector<int32_t> GgufServerModel::chat_prompt(const nlohmann::json& messages) const {
  // Template control tokens are parsed; message text never is (it cannot inject a turn).
  // A hostile template (they ship inside model files) meets its render budgets and throws minnow::Error,
  // which the API answers with a 400; cancel_renders() (shutdown) stops renders in progress.
  jinja::RenderLimits limits;
  limits.cancel = &cancel_;
  return build_chat_prompt(tok_, *tmpl_, ordered_messages(messages), true, limits).tokens;
}

size_t GgufServerModel::chat_prompt_bytes(const nlohmann::json& messages) const {
  jinja::RenderLimits limits;
  limits.cancel = &cancel_;
  return tmpl_->apply(ordered_messages(messages), true, nullptr, limits).size();
}

}  // namespace minnow::server
