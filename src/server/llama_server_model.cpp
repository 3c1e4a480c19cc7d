#include "server/llama_server_model.h"

#include "chat/jinja.h"
#include "common/error.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace minnow::server {

const char* kChatMLTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

LlamaServerModel::LlamaServerModel(const Tokenizer& tok, const GgufFile& gguf, std::string id,
                                   const std::string& template_override)
    : tok_(tok), id_(std::move(id)) {
  if (tok_.bos() >= 0) bos_text_ = tok_.token_text(tok_.bos());
  if (tok_.eos() >= 0) eos_text_ = tok_.token_text(tok_.eos());
  std::string src = template_override;
  if (src.empty()) {
    auto t = gguf.get_string("tokenizer.chat_template");
    src = t ? std::string(*t) : std::string(kChatMLTemplate);
  }
  tmpl_ = std::make_unique<jinja::Template>(src);
  for (int32_t i = 0; i < tok_.n_vocab(); ++i)
    if (tok_.is_control(i) && !tok_.token_text(i).empty()) control_texts_.push_back(tok_.token_text(i));
}

LlamaServerModel::~LlamaServerModel() = default;

int LlamaServerModel::n_vocab() const { return tok_.n_vocab(); }

std::vector<int32_t> LlamaServerModel::tokenize(const std::string& text, bool add_special, bool parse_special) const {
  return tok_.encode(text, add_special, parse_special);
}

std::string LlamaServerModel::token_to_piece(int32_t token) const { return tok_.token_to_piece(token); }

bool LlamaServerModel::is_eog(int32_t token) const { return tok_.is_eog(token); }

std::string LlamaServerModel::render(const nlohmann::json& messages) const {
  nlohmann::ordered_json ctx;
  ctx["messages"] = nlohmann::ordered_json::parse(messages.dump());
  ctx["add_generation_prompt"] = true;
  ctx["bos_token"] = bos_text_;
  ctx["eos_token"] = eos_text_;
  ctx["tools"] = nullptr;
  return tmpl_->render(jinja::from_json(ctx));
}

std::vector<int32_t> LlamaServerModel::chat_prompt(const nlohmann::json& messages) const {
  std::string text = render(messages);
  // BOS as the metadata says, unless the template wrote it already.
  bool add_bos = tok_.add_bos() && !(bos_text_.size() && text.compare(0, bos_text_.size(), bos_text_) == 0);
  std::vector<std::string> contents;
  bool risky = false;
  for (const auto& m : messages) {
    std::string c = m.value("content", "");
    for (const auto& ct : control_texts_) risky |= c.find(ct) != std::string::npos;
    contents.push_back(std::move(c));
  }
  if (!risky) return tok_.encode(text, add_bos, true);
  // Some message text spells a control token: tokenize each message's text as plain text so it cannot
  // inject a turn; only what the template itself wrote is parsed for control tokens.
  std::vector<int32_t> out;
  if (add_bos) out.push_back(tok_.bos());
  size_t cursor = 0;
  auto append = [&](const std::string& piece, bool special) {
    auto t = tok_.encode(piece, false, special);
    out.insert(out.end(), t.begin(), t.end());
  };
  for (const auto& c : contents) {
    if (c.empty()) continue;
    size_t at = text.find(c, cursor);
    if (at == std::string::npos) continue;
    append(text.substr(cursor, at - cursor), true);
    append(c, false);
    cursor = at + c.size();
  }
  append(text.substr(cursor), true);
  return out;
}

}  // namespace minnow::server
