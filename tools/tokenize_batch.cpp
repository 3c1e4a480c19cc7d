// tokenize_batch MODEL FILE: the ids of every input in FILE (inputs separated by a line "@@@", exact bytes
// otherwise), one JSON array per line, without BOS/EOS and without parsing special tokens. Same input and
// output as ../shared/ref/tok.cpp (llama.cpp), so the two can be compared (scripts/tokenizer_diff.sh).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tokenize_batch MODEL FILE\n");
    return 1;
  }
  try {
    auto gguf = minnow::GgufFile::open(argv[1]);
    auto tok = minnow::Tokenizer::from_gguf(*gguf);
    std::ifstream in(argv[2], std::ios::binary);
    if (!in) throw minnow::Error(std::string("cannot open file '") + argv[2] + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    const std::string all = ss.str();
    const std::string sep = "\n@@@\n";
    std::string out;
    for (size_t pos = 0; pos < all.size();) {
      const size_t next = all.find(sep, pos);
      const size_t end = next == std::string::npos ? all.size() : next;
      const auto ids = tok->encode(std::string_view(all).substr(pos, end - pos), false, false);
      out += '[';
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(ids[i]);
      }
      out += "]\n";
      pos = next == std::string::npos ? all.size() : next + sep.size();
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
