#include "chat/chat_prompt.h"

#include "chat/chat_template.h"
#include "chat/jinja_utf8.h"
#include "tokenizer/special_split.h"
#include "tokenizer/tokenizer.h"

namespace minnow {
namespace {

// The plain-text pieces of a message: its content string, or the "text" fields of a content list.
std::vector<std::string> message_texts(const nlohmann::ordered_json& m) {
  std::vector<std::string> out;
  if (!m.is_object() || !m.contains("content")) return out;
  const auto& c = m["content"];
  if (c.is_string()) {
    out.push_back(c.get<std::string>());
  } else if (c.is_array()) {
    for (const auto& part : c)
      if (part.is_object() && part.contains("text") && part["text"].is_string())
        out.push_back(part["text"].get<std::string>());
  }
  return out;
}

std::string marker(size_t k) {
  std::string s;
  jinja::utf8_append(s, 0xE000);
  s += std::to_string(k);
  jinja::utf8_append(s, 0xE001);
  return s;
}

// Exact spans via markers; false when the template does not insert contents verbatim.
bool spans_by_marker(const ChatTemplate& tmpl, const nlohmann::ordered_json& messages, bool gen,
                     const std::string& real, std::vector<std::pair<size_t, size_t>>& spans,
                     const jinja::RenderLimits& limits) {
  nlohmann::ordered_json marked = messages;
  std::vector<std::string> contents;
  for (auto& m : marked) {
    if (!m.is_object() || !m.contains("content")) continue;
    auto& c = m["content"];
    if (c.is_string()) {
      contents.push_back(c.get<std::string>());
      c = marker(contents.size() - 1);
    } else if (c.is_array()) {
      for (auto& part : c)
        if (part.is_object() && part.contains("text") && part["text"].is_string()) {
          contents.push_back(part["text"].get<std::string>());
          part["text"] = marker(contents.size() - 1);
        }
    }
  }
  std::string text;
  try {
    text = tmpl.apply(marked, gen, nullptr, limits);
  } catch (const std::exception&) {
    return false;
  }
  std::string rebuilt;
  std::vector<std::pair<size_t, size_t>> found;
  size_t i = 0;
  const std::string open = marker(0).substr(0, 3);  // U+E000 in UTF-8
  while (i < text.size()) {
    size_t at = text.find(open, i);
    if (at == std::string::npos) {
      rebuilt.append(text, i, std::string::npos);
      break;
    }
    rebuilt.append(text, i, at - i);
    size_t close = text.find(marker(0).substr(marker(0).size() - 3), at + 3);  // U+E001
    if (close == std::string::npos) return false;
    std::string num = text.substr(at + 3, close - at - 3);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) return false;
    size_t k = std::stoul(num);
    if (k >= contents.size()) return false;
    found.emplace_back(rebuilt.size(), rebuilt.size() + contents[k].size());
    rebuilt += contents[k];
    i = close + 3;
  }
  if (rebuilt != real) return false;
  spans = std::move(found);
  return true;
}

void spans_by_search(const nlohmann::ordered_json& messages, const std::string& text,
                     std::vector<std::pair<size_t, size_t>>& spans) {
  size_t cursor = 0;
  for (const auto& m : messages) {
    for (const std::string& c : message_texts(m)) {
      std::string s = c;
      size_t at = s.empty() ? std::string::npos : text.find(s, cursor);
      if (at == std::string::npos) {
        size_t b = c.find_first_not_of(" \t\r\n"), e = c.find_last_not_of(" \t\r\n");
        if (b == std::string::npos) continue;
        s = c.substr(b, e - b + 1);
        at = text.find(s, cursor);
        if (at == std::string::npos) continue;
      }
      spans.emplace_back(at, at + s.size());
      cursor = at + s.size();
    }
  }
}

}  // namespace

std::vector<int32_t> tokenize_with_plain_spans(const Tokenizer& tok, const std::string& text,
                                               const std::vector<std::pair<size_t, size_t>>& spans, bool add_bos) {
  // Fragments: special token ids, and text runs (merged across span boundaries, so tokenization of the text
  // is the same as in one piece; only where control tokens may be recognised differs).
  struct Piece {
    int32_t token;
    std::string text;
  };
  std::vector<Piece> pieces;
  auto add_text = [&](std::string_view t) {
    if (t.empty()) return;
    if (!pieces.empty() && pieces.back().token < 0) pieces.back().text.append(t);
    else pieces.push_back({-1, std::string(t)});
  };
  auto add_segment = [&](size_t b, size_t e, bool parse_special) {
    if (b >= e) return;
    std::string_view seg(text.data() + b, e - b);
    for (const Fragment& f : split_special(tok.vocab(), seg, parse_special)) {
      if (f.token >= 0) pieces.push_back({f.token, {}});
      else add_text(f.text);
    }
  };
  size_t cursor = 0;
  for (const auto& [b, e] : spans) {
    if (b < cursor || e > text.size()) continue;  // overlapping or out of range: leave to the template path
    add_segment(cursor, b, true);
    add_segment(b, e, false);
    cursor = e;
  }
  add_segment(cursor, text.size(), true);

  std::vector<int32_t> out;
  if (add_bos && tok.bos() >= 0) out.push_back(tok.bos());
  for (const Piece& p : pieces) {
    if (p.token >= 0) {
      out.push_back(p.token);
    } else {
      // A text run is always first or after a special token, as in Tokenizer::encode; with special parsing
      // off, encode() gives the run's tokens (user-defined tokens were split out above already).
      auto t = tok.encode(p.text, false, false);
      out.insert(out.end(), t.begin(), t.end());
    }
  }
  return out;
}

ChatPrompt build_chat_prompt(const Tokenizer& tok, const ChatTemplate& tmpl, const nlohmann::ordered_json& messages,
                             bool add_generation_prompt, const jinja::RenderLimits& limits) {
  ChatPrompt p;
  p.text = tmpl.apply(messages, add_generation_prompt, nullptr, limits);
  if (!spans_by_marker(tmpl, messages, add_generation_prompt, p.text, p.spans, limits)) {
    p.spans.clear();
    spans_by_search(messages, p.text, p.spans);
  }
  const std::string bos_text = tok.bos() >= 0 ? tok.token_text(tok.bos()) : std::string();
  bool add_bos = tok.add_bos() && !(bos_text.size() && p.text.compare(0, bos_text.size(), bos_text) == 0);
  p.tokens = tokenize_with_plain_spans(tok, p.text, p.spans, add_bos);
  return p;
}

}  // namespace minnow
