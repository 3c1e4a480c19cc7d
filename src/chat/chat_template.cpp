#include "chat/chat_template.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error.h"
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
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error("cannot read template file '" + path + "': " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error("template file '" + path + "' is a directory");
  if (!S_ISREG(st.st_mode)) throw Error("template file '" + path + "' is not a regular file (a FIFO or device?)");
  if (static_cast<uint64_t>(st.st_size) > kMaxTemplateFileBytes)
    throw Error("template file '" + path + "' is larger than " + std::to_string(kMaxTemplateFileBytes >> 10) + " KiB");
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw Error("cannot read template file '" + path + "': " + std::strerror(errno));
  std::string out;
  std::vector<char> buf(64 << 10);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) {  // bounded even if the file grows meanwhile
    out.append(buf.data(), n);
    if (out.size() > kMaxTemplateFileBytes)
      throw Error("template file '" + path + "' is larger than " + std::to_string(kMaxTemplateFileBytes >> 10) + " KiB");
  }
  if (std::ferror(f.get())) throw Error("cannot read template file '" + path + "'");
  return out;
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
