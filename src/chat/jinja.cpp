#include "chat/jinja.h"

#include "chat/jinja_arena.h"
#include "chat/jinja_interp.h"
#include "chat/jinja_parser.h"
#include "common/error.h"

namespace minnow::jinja {

Template::Template(std::string_view source)
    : body_(std::make_shared<const Body>(parse_template(source))) {}

std::string Template::render(const Value& context, const RenderLimits& limits) const {
  // Declared first, so it ends last: after the scopes and the interpreter, only cycles still hold what the
  // render made (jinja_arena.h). The template sees a copy of the context, so the caller's values never change
  // and none of the render's containers stays reachable from them.
  RenderArena arena;
  RenderBudget budget(limits);
  const Value ctx = deep_copy(context);
  auto globals = std::make_shared<Scope>();
  install_globals(*globals);
  auto top = std::make_shared<Scope>();
  top->parent = globals;
  if (ctx.is_dict())
    for (auto& kv : ctx.dict->items) top->vars[kv.first.str()] = kv.second;
  Interp interp;
  std::string out;
  if (interp.exec_body(*body_, top, out) != Interp::Flow::Normal)
    throw Error("template: break/continue outside a loop");
  return out;
}

static Value from_json_at(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxJsonDepth)
    throw Error("JSON nested too deeply for a template value (over " + std::to_string(kMaxJsonDepth) + " levels)");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::none();
    case nlohmann::ordered_json::value_t::boolean: return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::number(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value::number(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value::string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      for (auto& x : j) items.push_back(from_json_at(x, depth + 1));
      return Value::new_list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Value d = Value::new_dict();
      for (auto it = j.begin(); it != j.end(); ++it) d.dict->items.emplace_back(Value::string(it.key()), from_json_at(it.value(), depth + 1));
      return d;
    }
    default: return Value::none();
  }
}

Value from_json(const nlohmann::ordered_json& j) { return from_json_at(j, 1); }

}  // namespace minnow::jinja
