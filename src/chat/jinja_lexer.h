#pragma once
// Jinja lexer with Hugging Face's settings: trim_blocks and lstrip_blocks on, `-`/`+` whitespace control,
// comments and raw blocks resolved here, one trailing newline of the source dropped (keep_trailing_newline
// off), newlines normalised to \n.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace minnow::jinja {

struct Token {
  enum class Type : uint8_t { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };
  Type type;
  std::string text;  // Text: the literal; Name/Op: the name or operator; String: the decoded value
  int64_t ival = 0;
  double fval = 0;
  int line = 1;
};

// Throws Error("template line N: ...") on a lexical error.
std::vector<Token> tokenize(std::string_view source);

}  // namespace minnow::jinja
