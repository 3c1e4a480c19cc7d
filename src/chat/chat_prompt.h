#pragma once
// Chat prompt -> tokens, injection-safe: control-token texts written by the template become control tokens;
// the same texts inside message contents stay plain text (a user typing "<|im_start|>" cannot open a turn).
//
// Where each message's content lies in the rendered prompt is found by rendering once more with a unique
// marker in place of every content: when substituting the contents back reproduces the real rendering, the
// marker positions are exact. Otherwise (a template that rewrites contents, e.g. trims them) each content is
// searched for in order, after the end of the previous one, as is and then trimmed.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/jinja_budget.h"

namespace minnow {

class ChatTemplate;
class Tokenizer;

struct ChatPrompt {
  std::string text;                                // the rendered prompt
  std::vector<std::pair<size_t, size_t>> spans;    // [begin, end) of message text tokenized as plain text
  std::vector<int32_t> tokens;
};

// Adds BOS when the tokenizer's metadata asks for it, unless the rendered text already starts with it.
// limits: the budgets of each template render (jinja_budget.h), e.g. the server's cancellation flag.
ChatPrompt build_chat_prompt(const Tokenizer& tok, const ChatTemplate& tmpl, const nlohmann::ordered_json& messages,
                             bool add_generation_prompt, const jinja::RenderLimits& limits = jinja::RenderLimits());

// Tokenizes text; bytes inside spans (sorted, disjoint) are plain text, the rest may hold control tokens.
std::vector<int32_t> tokenize_with_plain_spans(const Tokenizer& tok, const std::string& text,
                                               const std::vector<std::pair<size_t, size_t>>& spans, bool add_bos);

}  // namespace minnow
