// minnow template: render a chat template over a JSON conversation and print the exact prompt.
#include <cstdio>
#include <sys/stat.h>

#include <fstream>

#include "app/commands.h"
#include "chat/chat_template.h"
#include "common/args.h"
#include "common/error.h"
#include "gguf/gguf_file.h"

namespace {

// The messages file: a regular file of at most 64 MiB (directories, FIFOs and devices refused).
std::string read_messages_file(const std::string& path) {
  constexpr uint64_t kMax = 64ull << 20;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw minnow::Error("messages file '" + path + "' is not a readable regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw minnow::Error("cannot open messages file '" + path + "'");
  std::string out;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > kMax) throw minnow::Error("messages file '" + path + "' is larger than 64 MiB");
  }
  return out;
}

int cmd_template(int argc, char** argv) {
  std::string model, messages_path, template_path, bos, eos;
  bool no_gen = false;
  minnow::ArgParser ap("template");
  ap.add_string({"-m", "--model"}, &model, "GGUF model: its tokenizer.chat_template and BOS/EOS texts");
  ap.add_string({"--messages"}, &messages_path,
                "JSON file: an array of messages, or an object {\"messages\": [...], other variables...}");
  ap.add_string({"--template-file", "--chat-template-file"}, &template_path, "Jinja template file (overrides the model's)");
  ap.add_flag({"--no-generation-prompt"}, &no_gen, "render with add_generation_prompt=false");
  ap.add_string({"--bos-token"}, &bos, "bos_token text (default: the model's, else empty)");
  ap.add_string({"--eos-token"}, &eos, "eos_token text (default: the model's, else empty)");
  if (!ap.parse(argc, argv, 1)) return 0;
  if (messages_path.empty()) throw minnow::Error("template: --messages FILE.json is required");
  if (model.empty() && template_path.empty()) throw minnow::Error("template: give -m MODEL or --template-file F");

  nlohmann::ordered_json doc;
  try {
    doc = nlohmann::ordered_json::parse(read_messages_file(messages_path));
  } catch (const nlohmann::json::exception& e) {
    throw minnow::Error("messages file '" + messages_path + "' is not valid JSON");
  }
  minnow::check_json_depth(doc, minnow::jinja::kMaxJsonDepth + 1);  // before anything copies it (copies recurse)
  nlohmann::ordered_json messages, extra = nlohmann::ordered_json::object();
  if (doc.is_array()) {
    messages = doc;
  } else if (doc.is_object() && doc.contains("messages")) {
    messages = doc["messages"];
    for (auto it = doc.begin(); it != doc.end(); ++it)
      if (it.key() != "messages") extra[it.key()] = it.value();
  } else {
    throw minnow::Error("messages file must hold a JSON array of messages or an object with \"messages\"");
  }
  if (!messages.is_array()) throw minnow::Error("\"messages\" must be a JSON array");

  std::string source = template_path.empty() ? "" : minnow::read_template_file(template_path);
  std::unique_ptr<minnow::ChatTemplate> tmpl;
  if (!model.empty()) {
    auto f = minnow::GgufFile::open(model);
    tmpl = std::make_unique<minnow::ChatTemplate>(minnow::ChatTemplate::from_model(*f, source));
    if (ap.was_set("--bos-token") || ap.was_set("--eos-token"))
      tmpl = std::make_unique<minnow::ChatTemplate>(tmpl->source(), ap.was_set("--bos-token") ? bos : tmpl->bos_token(),
                                                    ap.was_set("--eos-token") ? eos : tmpl->eos_token());
  } else {
    tmpl = std::make_unique<minnow::ChatTemplate>(source, bos, eos);
  }
  std::string out = tmpl->apply(messages, !no_gen, &extra);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

MINNOW_COMMAND("template", "render a chat template over a JSON conversation (exact prompt text)", cmd_template);
