#pragma once
// minnow's Jinja engine: parse a template once, render it many times. It follows Python's jinja2 with
// Hugging Face's chat-template settings (trim_blocks, lstrip_blocks, loopcontrols, HF's tojson, globals
// raise_exception and strftime_now). Parse and render errors throw minnow::Error naming the line.
// strftime_now uses the date in env MINNOW_FIXED_DATE ("YYYY-MM-DD[ HH:MM:SS]") when set (for tests).
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "chat/jinja_budget.h"
#include "chat/jinja_value.h"

namespace minnow::jinja {

struct Stmt;

class Template {
 public:
  explicit Template(std::string_view source);
  // context: a dict of variables (e.g. messages, add_generation_prompt, bos_token, ...). The render runs under
  // `limits` (jinja_budget.h: steps, wall clock, sizes, depth, cancellation); exceeding one throws Error.
  std::string render(const Value& context, const RenderLimits& limits = RenderLimits()) const;

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body_;
};

// JSON to Value (objects keep their order: pass ordered_json). Throws Error for JSON nested deeper than
// kMaxJsonDepth (the conversion never recurses further).
constexpr int kMaxJsonDepth = 128;
Value from_json(const nlohmann::ordered_json& j);

}  // namespace minnow::jinja
