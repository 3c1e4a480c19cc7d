#pragma once
// The tree-walking evaluator (internal to src/chat). Scopes follow jinja2: a for loop and a macro call
// open a scope; if/else and set blocks do not. Top-level variables are visible inside macros at call time.
#include <memory>
#include <string>
#include <unordered_map>

#include "chat/jinja_ast.h"
#include "chat/jinja_value.h"

namespace minnow::jinja {

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

[[noreturn]] void undefined_error(const Value& v);

class Interp {
 public:
  enum class Flow { Normal, Break, Continue };

  Flow exec_body(const Body& body, const ScopePtr& scope, std::string& out);
  Value eval(const Expr& e, const ScopePtr& scope);
  Value call(const Value& fn, CallArgs& args);

 private:
  Flow exec(const Stmt& s, const ScopePtr& scope, std::string& out);
  void exec_for(const Stmt& s, const ScopePtr& scope, std::string& out);
  void assign(const Expr& target, const Value& v, const ScopePtr& scope);
  Value make_macro(const Stmt& m, const ScopePtr& scope);
  Value eval_binary(const Expr& e, const ScopePtr& scope);
  Value eval_compare(const Expr& e, const ScopePtr& scope);
  Value eval_filter(const Expr& e, const ScopePtr& scope, const Value* input);
  void eval_args(const Expr& e, size_t first, const ScopePtr& scope, CallArgs& args);
  int depth_ = 0;
};

// Builtins (jinja_builtins.cpp, jinja_methods.cpp).
Value call_filter(Interp& in, const std::string& name, const Value& v, CallArgs& args);
bool call_test(Interp& in, const std::string& name, const Value& v, CallArgs& args);
Value get_attr(const Value& obj, const std::string& name);  // jinja2 getattr: attribute, then item
Value get_item(const Value& obj, const Value& key);         // jinja2 getitem: item, then attribute
Value get_method(const Value& obj, const std::string& name);  // bound str/list/dict method or Undefined
Value slice_value(const Value& obj, const Value& start, const Value& stop, const Value& step);
bool value_contains(const Value& container, const Value& item);
std::vector<Value> iterate(const Value& v);  // Python iter(): list items, dict keys, string chars
void install_globals(Scope& globals);
std::string html_escape(const std::string& s);  // markupsafe.escape

}  // namespace minnow::jinja
