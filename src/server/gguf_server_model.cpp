#include "server/gguf_server_model.h"

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
      tmpl_(std::make_unique<ChatTemplate>(ChatTemplate::from_model(gguf, template_override))) {}

GgufServerModel::~GgufServerModel() = default;

int GgufServerModel::n_vocab() const { return tok_.n_vocab(); }

std::vector<int32_t> GgufServerModel::tokenize(const std::string& text, bool add_special, bool parse_special) const {
  return tok_.encode(text, add_special, parse_special);
}

std::string GgufServerModel::token_to_piece(int32_t token) const { return tok_.token_to_piece(token); }

bool GgufServerModel::is_eog(int32_t token) const { return tok_.is_eog(token); }

std::vector<int32_t> GgufServerModel::chat_prompt(const nlohmann::json& messages) const {
  // Template control tokens are parsed; message text never is (it cannot inject a turn).
  // A hostile template (they ship inside model files) meets its render budgets and throws minnow::Error,
  // which the API answers with a 400; cancel_renders() (shutdown) stops renders in progress.
  jinja::RenderLimits limits;
  limits.cancel = &cancel_;
  return build_chat_prompt(tok_, *tmpl_, nlohmann::ordered_json::parse(messages.dump()), true, limits).tokens;
}

}  // namespace minnow::server
