// minnow tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--special]: token ids on one line.
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "common/args.h"
#include "common/error.h"
#include "common/input_file.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace {

int cmd_tokenize(int argc, char** argv) {
  std::string model, prompt, file;
  bool no_bos = false, special = false, pieces = false;
  minnow::ArgParser args("tokenize");
  args.add_string({"-m", "--model"}, &model, "GGUF model or tokenizer-only GGUF file");
  args.add_string({"-p", "--prompt"}, &prompt, "text to tokenize");
  args.add_string({"-f", "--file"}, &file, "regular file whose exact bytes are tokenized (at most 256 MiB)");
  args.add_flag({"--no-bos"}, &no_bos, "add no BOS/EOS tokens");
  args.add_flag({"--special"}, &special, "recognise special-token texts (e.g. <|im_start|>) in the input");
  args.add_flag({"--pieces"}, &pieces, "print the pre-tokenizer's pieces (JSON array) instead of ids");
  if (!args.parse(argc, argv, 1)) return 0;
  if (model.empty()) throw minnow::Error("tokenize needs a model (-m FILE)");
  const bool has_p = args.was_set("-p"), has_f = args.was_set("-f");
  if (has_p == has_f) throw minnow::Error("tokenize needs exactly one of -p TEXT or -f FILE");
  const std::string text = has_f ? minnow::read_input_file(file) : prompt;

  auto gguf = minnow::GgufFile::open(model);
  auto tok = minnow::Tokenizer::from_gguf(*gguf);
  if (pieces) {
    // Pieces may hold bytes that are not valid UTF-8 (encoded surrogates): JSON shows them as U+FFFD.
    const std::string out =
        nlohmann::json(tok->pre_split(text)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  const auto ids = tok->encode(text, !no_bos, special);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) line.push_back(' ');
    line += std::to_string(ids[i]);
  }
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stdout);
  return 0;
}

}  // namespace

MINNOW_COMMAND("tokenize", "print the token ids of a text", cmd_tokenize);
