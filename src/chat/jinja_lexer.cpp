#include "chat/jinja_lexer.h"

#include <cstring>

#include "chat/jinja_utf8.h"
#include "common/error.h"

namespace minnow::jinja {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit_text(src_.substr(pos_));
        pos_ = src_.size();
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      std::string text = src_.substr(pos_, tag - pos_);
      size_t after = tag + 2;
      char ctl = after < src_.size() ? src_[after] : '\0';
      if (ctl == '-') {
        while (!text.empty() && is_ws(text.back())) text.pop_back();
        ++after;
      } else {
        if (ctl == '+') ++after;
        else if (kind != '{') lstrip(text);
      }
      emit_text(text);
      count_lines(pos_, tag);
      pos_ = after;
      if (kind == '#') {
        lex_comment();
      } else if (kind == '%' && try_raw()) {
        // raw block consumed
      } else {
        lex_tag(kind == '{');
      }
    }
    toks_.push_back({Token::Type::Eof, "", 0, 0, line_});
    return std::move(toks_);
  }

 private:
  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  bool line_starting_ = true;
  std::vector<Token> toks_;

  [[noreturn]] void fail(const std::string& msg) {
    throw Error("template line " + std::to_string(line_) + ": " + msg);
  }

  size_t find_tag(size_t from) const {
    for (size_t k = from; k + 1 < src_.size(); ++k) {
      if (src_[k] == '{' && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    }
    return std::string::npos;
  }

  void count_lines(size_t a, size_t b) {
    for (size_t k = a; k < b && k < src_.size(); ++k)
      if (src_[k] == '\n') ++line_;
  }

  void lstrip(std::string& text) const {
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting_) return;
    for (size_t k = l_pos; k < text.size(); ++k)
      if (text[k] != ' ' && text[k] != '\t') return;
    text.resize(l_pos);
  }

  void emit_text(std::string text) {
    if (text.empty()) return;
    toks_.push_back({Token::Type::Text, std::move(text), 0, 0, line_});
  }

  // After a tag's closing delimiter at pos_: apply `-` (strip all whitespace) or trim_blocks (one newline).
  void after_close(char ctl, bool trim_blocks) {
    size_t start = pos_;
    if (ctl == '-') {
      while (pos_ < src_.size() && is_ws(src_[pos_])) ++pos_;
    } else if (ctl != '+' && trim_blocks && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
    count_lines(start, pos_);
    line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
  }

  void lex_comment() {
    size_t close = src_.find("#}", pos_);
    if (close == std::string::npos) fail("unclosed comment");
    char ctl = close > pos_ ? src_[close - 1] : '\0';
    count_lines(pos_, close);
    pos_ = close + 2;
    after_close(ctl == '-' || ctl == '+' ? ctl : '\0', true);
  }

  bool try_raw() {
    size_t p = pos_;
    while (p < src_.size() && is_ws(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    if (p < src_.size() && (is_ident_start(src_[p]) || is_digit(src_[p]))) return false;
    while (p < src_.size() && is_ws(src_[p])) ++p;
    char ctl = '\0';
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ctl = src_[p++];
    if (src_.compare(p, 2, "%}") != 0) return false;
    if (ctl == '+') fail("'+%}' is not allowed after raw");  // as jinja2 (its raw tag takes only '-%}')
    count_lines(pos_, p + 2);
    pos_ = p + 2;
    after_close(ctl == '-' ? '-' : '+', false);  // no trim_blocks after {% raw %}
    // Find {%[-+]? endraw [-+]?%}
    size_t search = pos_;
    while (true) {
      size_t tag = src_.find("{%", search);
      if (tag == std::string::npos) fail("raw block is never closed with endraw");
      size_t q = tag + 2;
      char sctl = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sctl = src_[q++];
      while (q < src_.size() && is_ws(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) {
        search = tag + 2;
        continue;
      }
      q += 6;
      while (q < src_.size() && is_ws(src_[q])) ++q;
      char ectl = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ectl = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) {
        search = tag + 2;
        continue;
      }
      std::string data = src_.substr(pos_, tag - pos_);
      if (sctl == '-') {
        while (!data.empty() && is_ws(data.back())) data.pop_back();
      } else if (sctl != '+') {
        lstrip(data);  // lstrip_blocks applies to {% endraw %} too
      }
      emit_text(data);
      count_lines(pos_, q + 2);
      pos_ = q + 2;
      after_close(ectl, true);
      return true;
    }
  }

  void lex_tag(bool is_var) {
    int open_line = line_;
    toks_.push_back({is_var ? Token::Type::VarBegin : Token::Type::BlockBegin, "", 0, 0, line_});
    int depth = 0;
    while (true) {
      while (pos_ < src_.size() && is_ws(src_[pos_])) {
        if (src_[pos_] == '\n') ++line_;
        ++pos_;
      }
      if (pos_ >= src_.size())
        throw Error("template line " + std::to_string(open_line) + ": tag is never closed");
      if (depth == 0) {
        const char* close = is_var ? "}}" : "%}";
        char ctl = '\0';
        size_t p = pos_;
        if (src_[p] == '-' || src_[p] == '+') ctl = src_[p++];
        if (src_.compare(p, 2, close) == 0 && !(is_var && ctl == '+')) {
          toks_.push_back({is_var ? Token::Type::VarEnd : Token::Type::BlockEnd, "", 0, 0, line_});
          pos_ = p + 2;
          after_close(ctl, !is_var);
          return;
        }
      }
      char c = src_[pos_];
      if (is_ident_start(c)) {
        size_t b = pos_;
        while (pos_ < src_.size() && (is_ident_start(src_[pos_]) || is_digit(src_[pos_]))) ++pos_;
        toks_.push_back({Token::Type::Name, src_.substr(b, pos_ - b), 0, 0, line_});
      } else if (is_digit(c)) {
        lex_number();
      } else if (c == '\'' || c == '"') {
        lex_string(c);
      } else {
        static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two)
          if (src_.compare(pos_, 2, t) == 0) op = t;
        if (op.empty()) {
          if (!std::strchr("+-*/%~<>=()[]{},.:|;", c)) fail(std::string("unexpected character '") + c + "'");
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") {
          if (depth == 0) fail("unexpected '" + op + "'");
          --depth;
        }
        pos_ += op.size();
        toks_.push_back({Token::Type::Op, op, 0, 0, line_});
      }
    }
  }

  void lex_number() {
    size_t b = pos_;
    auto digits = [&] {
      while (pos_ < src_.size() && (is_digit(src_[pos_]) || src_[pos_] == '_')) ++pos_;
    };
    digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && is_digit(src_[p])) {
        is_float = true;
        pos_ = p;
        digits();
      }
    }
    std::string text;
    for (size_t k = b; k < pos_; ++k)
      if (src_[k] != '_') text.push_back(src_[k]);
    Token t{is_float ? Token::Type::Float : Token::Type::Int, text, 0, 0, line_};
    try {
      if (is_float) t.fval = std::stod(text);
      else t.ival = std::stoll(text);
    } catch (const std::exception&) {
      fail("number out of range: " + text);
    }
    toks_.push_back(std::move(t));
  }

  static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  void lex_string(char quote) {
    int start_line = line_;
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= src_.size())
        throw Error("template line " + std::to_string(start_line) + ": unterminated string literal");
      char c = src_[pos_++];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= src_.size()) continue;
      char e = src_[pos_++];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case '\\': out.push_back('\\'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case 'a': out.push_back('\a'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case '\n': ++line_; break;  // line continuation
        case 'x': case 'u': case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t v = 0;
          for (int k = 0; k < n; ++k) {
            int h = pos_ < src_.size() ? hexval(src_[pos_]) : -1;
            if (h < 0) fail("bad \\" + std::string(1, e) + " escape in string literal");
            v = v * 16 + static_cast<uint32_t>(h);
            ++pos_;
          }
          utf8_append(out, static_cast<char32_t>(v));
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++k)
              v = v * 8 + static_cast<uint32_t>(src_[pos_++] - '0');
            utf8_append(out, static_cast<char32_t>(v));
          } else {
            out.push_back('\\');
            out.push_back(e);
          }
      }
    }
    toks_.push_back({Token::Type::String, std::move(out), 0, 0, start_line});
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  std::string src;
  src.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      src.push_back('\n');
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      src.push_back(source[k]);
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src)).run();
}

}  // namespace minnow::jinja
