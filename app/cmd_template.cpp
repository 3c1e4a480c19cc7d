// minnow template: render a chat template over a JSON conversation and print the exact prompt.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "app/commands.h"
#include "chat/chat_template.h"
#include "common/args.h"
#include "common/error.h"
#include "gguf/gguf_file.h"

namespace {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw minnow::Error(std::string("cannot open ") + what + " '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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
    doc = nlohmann::ordered_json::parse(read_file(messages_path, "messages file"));
  } catch (const nlohmann::json::exception& e) {
    throw minnow::Error("messages file '" + messages_path + "' is not valid JSON");
  }
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

  std::string source = template_path.empty() ? "" : read_file(template_path, "template file");
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
