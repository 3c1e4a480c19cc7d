#include "chat/chat_template.h"

#include <memory>
#include <vector>

#include "common/error.h"
#include "common/input_file.h"
#include "gguf/gguf_file.h"

namespace minnow {

ChatTemplate::ChatTemplate(std::string source, std::string bos_token, std::string eos_token)
    : source_(std::move(source)), bos_(std::move(bos_token)), eos_(std::move(eos_token)) {
  try {
    tmpl_ = std::make_shared<jinja::Template>(source_);
  } catch (const Error& e) {
    throw Error(std::string("chat template: ") + e.what());
  }
}

std::string read_template_file(const std::string& path) {
  try {
    return read_input_file(path, kMaxTemplateFileBytes);
  } catch (const Error& e) {
    throw Error(std::string("template file: ") + e.what());
  }
}

void check_json_depth(const nlohmann::ordered_json& j, int max_depth) {
  std::vector<std::pair<const nlohmann::ordered_json*, int>> todo{{&j, 1}};
  while (!todo.empty()) {
    auto [x, d] = todo.back();
    todo.pop_back();
    if (!x->is_structured()) continue;
    if (d > max_depth)
      throw Error("JSON nested too deeply (over " + std::to_string(max_depth) + " levels)");
    for (const auto& kid : *x) todo.emplace_back(&kid, d + 1);
  }
}

static std::string token_text(const GgufFile& f, const char* id_key) {
  auto id = f.get_int(id_key);
  const GgufValue* toks = f.find("tokenizer.ggml.tokens");
  if (!id || !toks || toks->type() != GgufValueType::ARRAY) return "";
  if (*id < 0 || static_cast<size_t>(*id) >= toks->array_size()) return "";
  return std::string(toks->at(static_cast<size_t>(*id)).as_string());
}

ChatTemplate ChatTemplate::from_model(const GgufFile& f, const std::string& template_source) {
  std::string src = template_source;
  if (src.empty()) {
    auto t = f.get_string("tokenizer.chat_template");
    src = t && !t->empty() ? std::string(*t) : std::string(kChatMLTemplate);
  }
  return ChatTemplate(src, token_text(f, "tokenizer.ggml.bos_token_id"), token_text(f, "tokenizer.ggml.eos_token_id"));
}

std::string ChatTemplate::apply(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                const nlohmann::ordered_json* extra, const jinja::RenderLimits& limits) const {
  if (!messages.is_array()) throw Error("chat messages must be a JSON array");
  check_json_depth(messages);
  if (extra) check_json_depth(*extra);
  jinja::Value ctx = jinja::Value::new_dict();
  auto set = [&](const char* k, jinja::Value v) { ctx.dict->set(jinja::Value::string(k), std::move(v)); };
  set("messages", jinja::from_json(messages));
  set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
  set("bos_token", jinja::Value::string(bos_));
  set("eos_token", jinja::Value::string(eos_));
  set("tools", jinja::Value::none());
  if (extra && extra->is_object())
    for (auto it = extra->begin(); it != extra->end(); ++it)
      ctx.dict->set(jinja::Value::string(it.key()), jinja::from_json(it.value()));
  try {
    return tmpl_->render(ctx, limits);
  } catch (const Error& e) {
    throw Error(std::string("chat template: ") + e.what());
  }
}

}  // namespace minnow
