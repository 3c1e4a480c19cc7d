#include "chat/jinja_interp.h"

#include <cmath>

#include "chat/jinja_budget.h"
#include "chat/jinja_strings.h"
#include "common/error.h"

namespace minnow::jinja {

using EK = Expr::Kind;
using SK = Stmt::Kind;
using VK = Value::Kind;

void undefined_error(const Value& v) {
  throw Error(v.s.empty() ? std::string("value is undefined") : v.s);
}

static Error with_line(const Error& e, int line) {
  std::string msg = e.what();
  if (msg.rfind("template line ", 0) == 0) return e;
  return Error("template line " + std::to_string(line) + ": " + msg);
}

Interp::Flow Interp::exec_body(const Body& body, const ScopePtr& scope, std::string& out) {
  for (const auto& s : body) {
    Flow f = exec(*s, scope, out);
    if (f != Flow::Normal) return f;
  }
  return Flow::Normal;
}

Interp::Flow Interp::exec(const Stmt& s, const ScopePtr& scope, std::string& out) {
  try {
    BudgetDepth depth;
    budget_step();
    switch (s.kind) {
      case SK::Text:
        budget_output(out.size() + s.text.size(), s.text.size());
        out += s.text;
        return Flow::Normal;
      case SK::Output: {
        std::string piece = eval(*s.expr, scope).str();
        budget_output(out.size() + piece.size(), piece.size());
        out += piece;
        return Flow::Normal;
      }
      case SK::If:
        for (size_t k = 0; k < s.conds.size(); ++k)
          if (eval(*s.conds[k], scope).truthy()) return exec_body(s.bodies[k], scope, out);
        return exec_body(s.else_body, scope, out);
      case SK::For:
        exec_for(s, scope, out);
        return Flow::Normal;
      case SK::Set:
        assign(*s.target, eval(*s.expr, scope), scope);
        return Flow::Normal;
      case SK::SetBlock: {
        std::string buf;
        auto inner = std::make_shared<Scope>();  // jinja2: the captured body is its own frame
        inner->parent = scope;
        if (Flow f = exec_body(s.body, inner, buf); f != Flow::Normal) return f;  // jinja2: not assigned
        Value v = Value::string(std::move(buf));
        if (s.expr) v = eval_filter(*s.expr, scope, &v);
        assign(*s.target, v, scope);
        return Flow::Normal;
      }
      case SK::Macro:
        scope->vars[s.name] = make_macro(s, scope);
        return Flow::Normal;
      case SK::CallBlock: {
        const Expr& call_e = *s.expr;
        Value fn = eval(*call_e.kids[0], scope);
        CallArgs args;
        eval_args(call_e, 1, scope, args);
        args.kw.emplace_back("caller", make_macro(s, scope));
        std::string piece = call(fn, args).str();
        budget_output(out.size() + piece.size(), piece.size());
        out += piece;
        return Flow::Normal;
      }
      case SK::FilterBlock: {
        std::string buf;
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        if (Flow f = exec_body(s.body, inner, buf); f != Flow::Normal) return f;
        Value v = Value::string(std::move(buf));
        std::string piece = eval_filter(*s.expr, scope, &v).str();
        budget_output(out.size() + piece.size(), piece.size());
        out += piece;
        return Flow::Normal;
      }
      case SK::Break:
        return Flow::Break;
      case SK::Continue:
        return Flow::Continue;
      case SK::Generation:
        return exec_body(s.body, scope, out);
      case SK::With: {
        auto inner = std::make_shared<Scope>();
        inner->parent = scope;
        for (const auto& p : s.params) inner->vars[p.name] = eval(*p.def, scope);
        return exec_body(s.body, inner, out);
      }
    }
  } catch (const Error& e) {
    throw with_line(e, s.line);
  }
  return Flow::Normal;
}

void Interp::exec_for(const Stmt& s, const ScopePtr& scope, std::string& out) {
  Value seq = eval(*s.expr, scope);
  if (!(seq.is_undefined() || seq.is_list() || seq.is_dict() || seq.is_string()))
    throw Error("'" + seq.type_name() + "' object is not iterable");
  std::vector<Value> items = iterate(seq);
  if (s.cond) {
    std::vector<Value> kept;
    for (auto& it : items) {
      auto cond_scope = std::make_shared<Scope>();
      cond_scope->parent = scope;
      assign(*s.target, it, cond_scope);
      if (eval(*s.cond, cond_scope).truthy()) kept.push_back(it);
    }
    items = std::move(kept);
  }
  size_t n = items.size();
  bool completed = false;
  for (size_t k = 0; k < n; ++k) {
    // jinja2: each iteration starts from the enclosing scope's values (assignments don't carry over).
    auto loop_scope = std::make_shared<Scope>();
    loop_scope->parent = scope;
    Value loop = Value::new_dict();
    auto& d = *loop.dict;
    auto put = [&](const char* key, Value v) { d.items.emplace_back(Value::string(key), std::move(v)); };
    put("index", Value::integer(static_cast<int64_t>(k + 1)));
    put("index0", Value::integer(static_cast<int64_t>(k)));
    put("revindex", Value::integer(static_cast<int64_t>(n - k)));
    put("revindex0", Value::integer(static_cast<int64_t>(n - k - 1)));
    put("first", Value::boolean(k == 0));
    put("last", Value::boolean(k + 1 == n));
    put("length", Value::integer(static_cast<int64_t>(n)));
    put("depth", Value::integer(1));
    put("depth0", Value::integer(0));
    put("previtem", k > 0 ? items[k - 1] : Value::undefined("'loop.previtem' is undefined (first iteration)"));
    put("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("'loop.nextitem' is undefined (last iteration)"));
    put("cycle", Value::function("cycle", [k](CallArgs& a) -> Value {
          if (a.pos.empty()) throw Error("no items for cycling given");
          return a.pos[k % a.pos.size()];
        }));
    loop_scope->vars["loop"] = loop;
    assign(*s.target, items[k], loop_scope);
    Flow f = exec_body(s.body, loop_scope, out);
    if (f == Flow::Break) break;
    if (f == Flow::Normal) completed = true;
  }
  // jinja2 quirk kept: `else` runs unless some iteration reached the end of the body (break/continue don't).
  if (!completed) exec_body(s.else_body, scope, out);
}

void Interp::assign(const Expr& target, const Value& v, const ScopePtr& scope) {
  switch (target.kind) {
    case EK::Name:
      scope->vars[target.name] = v;
      return;
    case EK::Tuple: {
      if (!(v.is_list() || v.is_string() || v.is_dict()))
        throw Error("cannot unpack non-iterable " + v.type_name() + " object");
      std::vector<Value> items = iterate(v);
      if (items.size() != target.kids.size())
        throw Error("cannot unpack " + std::to_string(items.size()) + " values into " +
                    std::to_string(target.kids.size()) + " names");
      for (size_t k = 0; k < items.size(); ++k) assign(*target.kids[k], items[k], scope);
      return;
    }
    case EK::Attr: {
      Value obj = eval(*target.kids[0], scope);
      if (!obj.is_namespace()) throw Error("cannot assign attribute on non-namespace object");
      obj.dict->set(Value::string(target.name), v);
      return;
    }
    default:
      throw Error("cannot assign to this expression");
  }
}

Value Interp::make_macro(const Stmt& m, const ScopePtr& scope) {
  std::weak_ptr<Scope> weak = scope;
  const Stmt* mp = &m;
  std::string name = m.kind == SK::Macro ? m.name : "caller";
  Value fn = Value::function(name, [this, mp, weak, name](CallArgs& a) -> Value {
    ScopePtr def = weak.lock();
    if (!def) throw Error("macro '" + name + "' called after its scope ended");
    if (depth_ > 200) throw Error("maximum macro recursion depth exceeded");
    uint64_t arg_bytes = 0;  // each call holds its own copies of its string arguments
    for (auto& v : a.pos) arg_bytes += v.s.size();
    for (auto& kv : a.kw) arg_bytes += kv.second.s.size();
    budget_items(a.pos.size() + a.kw.size(), arg_bytes);
    auto sc = std::make_shared<Scope>();
    sc->parent = def;
    const auto& params = mp->params;
    std::vector<bool> used_kw(a.kw.size(), false);
    for (size_t k = 0; k < params.size(); ++k) {
      const auto& p = params[k];
      Value v;
      bool found = false;
      if (k < a.pos.size()) {
        v = a.pos[k];
        found = true;
      }
      for (size_t j = 0; j < a.kw.size(); ++j)
        if (a.kw[j].first == p.name) {
          if (found) throw Error("macro '" + name + "' got multiple values for argument '" + p.name + "'");
          v = a.kw[j].second;
          used_kw[j] = true;
          found = true;
        }
      if (!found) v = p.def ? eval(*p.def, sc) : Value::undefined("'" + p.name + "' is undefined");
      sc->vars[p.name] = v;
    }
    std::vector<Value> extra;
    for (size_t k = params.size(); k < a.pos.size(); ++k) extra.push_back(a.pos[k]);
    sc->vars["varargs"] = Value::new_list(std::move(extra), true);
    Value kwargs = Value::new_dict();
    for (size_t j = 0; j < a.kw.size(); ++j) {
      if (used_kw[j]) continue;
      if (a.kw[j].first == "caller") sc->vars["caller"] = a.kw[j].second;
      else kwargs.dict->set(Value::string(a.kw[j].first), a.kw[j].second);
    }
    sc->vars["kwargs"] = kwargs;
    std::string out;
    ++depth_;
    try {
      Flow f = exec_body(mp->body, sc, out);
      --depth_;
      if (f != Flow::Normal) throw Error("break/continue outside a loop");
    } catch (...) {
      --depth_;
      throw;
    }
    return Value::string(std::move(out));
  });
  fn.fn->is_macro = true;
  return fn;
}

Value Interp::call(const Value& fn, CallArgs& args) {
  if (fn.is_undefined()) undefined_error(fn);
  if (fn.kind != VK::Callable) throw Error("'" + fn.type_name() + "' object is not callable");
  return fn.fn->fn(args);
}

void Interp::eval_args(const Expr& e, size_t first, const ScopePtr& scope, CallArgs& args) {
  for (size_t k = first; k < e.kids.size(); ++k) args.pos.push_back(eval(*e.kids[k], scope));
  for (auto& kv : e.kwargs) args.kw.emplace_back(kv.first, eval(*kv.second, scope));
}

Value Interp::eval_filter(const Expr& e, const ScopePtr& scope, const Value* input) {
  Value v = e.kids[0] ? (e.kids[0]->kind == EK::Filter ? eval_filter(*e.kids[0], scope, input)
                                                       : eval(*e.kids[0], scope))
                      : *input;
  CallArgs args;
  eval_args(e, 1, scope, args);
  return call_filter(*this, e.name, v, args);
}

static Value arith(const std::string& op, const Value& a, const Value& b) {
  if (op == "%" && a.is_string()) return Value::string(py_percent_format(a.s, b));
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  auto bad = [&]() -> Error {
    return Error("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
  };
  if (a.is_number() && b.is_number()) {
    bool fl = a.kind == VK::Float || b.kind == VK::Float;
    int64_t r = 0;
    auto checked = [&](bool overflow) {
      if (overflow) throw Error("integer overflow: result of " + op + " exceeds 64 bits");
      return Value::integer(r);
    };
    if (op == "+") return fl ? Value::number(a.as_double() + b.as_double()) : checked(__builtin_add_overflow(a.as_int(), b.as_int(), &r));
    if (op == "-") return fl ? Value::number(a.as_double() - b.as_double()) : checked(__builtin_sub_overflow(a.as_int(), b.as_int(), &r));
    if (op == "*") return fl ? Value::number(a.as_double() * b.as_double()) : checked(__builtin_mul_overflow(a.as_int(), b.as_int(), &r));
    if (op == "/") {
      if (b.as_double() == 0) throw Error("division by zero");
      return Value::number(a.as_double() / b.as_double());
    }
    if (op == "//" || op == "%") {
      if (b.as_double() == 0) throw Error(op == "//" ? "integer division or modulo by zero" : "modulo by zero");
      if (fl) {  // CPython's float divmod, signed zeros included
        double x = a.as_double(), y = b.as_double();
        double mod = std::fmod(x, y);
        double div = (x - mod) / y;
        if (mod != 0) {
          if ((y < 0) != (mod < 0)) {
            mod += y;
            div -= 1.0;
          }
        } else {
          mod = std::copysign(0.0, y);
        }
        double floordiv;
        if (div != 0) {
          floordiv = std::floor(div);
          if (div - floordiv > 0.5) floordiv += 1.0;
        } else {
          floordiv = std::copysign(0.0, x / y);
        }
        return Value::number(op == "%" ? mod : floordiv);
      }
      int64_t x = a.as_int(), y = b.as_int();
      if (y == -1) {  // x / -1 overflows for INT64_MIN; x % -1 is 0
        if (op == "%") return Value::integer(0);
        if (x == INT64_MIN) throw Error("integer overflow: result of // exceeds 64 bits");
        return Value::integer(-x);
      }
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        q -= 1;
        r += y;
      }
      return op == "//" ? Value::integer(q) : Value::integer(r);
    }
    if (op == "**") {
      if (!fl && b.as_int() >= 0) {
        int64_t p = 1, base = a.as_int(), e = b.as_int();
        if (base == 0) return Value::integer(e == 0 ? 1 : 0);
        if (base == 1) return Value::integer(1);
        if (base == -1) return Value::integer(e % 2 ? -1 : 1);
        for (int64_t k = 0; k < e; ++k)  // |base| >= 2 overflows within 64 steps
          if (__builtin_mul_overflow(p, base, &p)) throw Error("integer overflow: result of ** exceeds 64 bits");
        return Value::integer(p);
      }
      return Value::number(std::pow(a.as_double(), b.as_double()));
    }
    throw bad();
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      if (!a.safe && !b.safe) return Value::string(a.s + b.s);
      Value r = Value::string((a.safe ? a.s : html_escape(a.s)) + (b.safe ? b.s : html_escape(b.s)));
      r.safe = true;
      return r;
    }
    if (a.is_list() && b.is_list() && a.list->tuple == b.list->tuple) {
      std::vector<Value> items = a.list->items;
      items.insert(items.end(), b.list->items.begin(), b.list->items.end());
      return Value::new_list(std::move(items), a.list->tuple);
    }
  }
  if (op == "*") {
    const Value* seq = a.is_int_like() ? &b : &a;
    const Value* cnt = a.is_int_like() ? &a : &b;
    if (cnt->is_int_like()) {
      const int64_t n = std::max<int64_t>(0, cnt->as_int());
      if (seq->is_string()) {
        uint64_t total = 0;
        if (__builtin_mul_overflow(static_cast<uint64_t>(n), seq->s.size(), &total) || total > SIZE_MAX / 2)
          throw Error("result of * is too large");
        budget_string(static_cast<size_t>(total));  // refused here, before anything is allocated
        std::string r;
        r.reserve(static_cast<size_t>(total));
        for (int64_t k = 0; k < n; ++k) r += seq->s;
        return Value::string(std::move(r));
      }
      if (seq->is_list()) {
        uint64_t total = 0;
        if (__builtin_mul_overflow(static_cast<uint64_t>(n), seq->list->items.size(), &total) ||
            total > static_cast<uint64_t>(1) << 40)
          throw Error("result of * is too large");
        uint64_t bytes = 0;
        for (auto& x : seq->list->items) bytes += x.s.size();
        uint64_t all_bytes = 0;
        if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(n), &all_bytes)) all_bytes = UINT64_MAX;
        budget_items(static_cast<size_t>(total), all_bytes);
        std::vector<Value> r;
        r.reserve(static_cast<size_t>(total));
        for (int64_t k = 0; k < n; ++k) r.insert(r.end(), seq->list->items.begin(), seq->list->items.end());
        return Value::new_list(std::move(r), seq->list->tuple);
      }
    }
  }
  throw bad();
}

Value Interp::eval_binary(const Expr& e, const ScopePtr& scope) {
  const std::string& op = e.name;
  if (op == "and") {
    Value a = eval(*e.kids[0], scope);
    return a.truthy() ? eval(*e.kids[1], scope) : a;
  }
  if (op == "or") {
    Value a = eval(*e.kids[0], scope);
    return a.truthy() ? a : eval(*e.kids[1], scope);
  }
  Value a = eval(*e.kids[0], scope);
  Value b = eval(*e.kids[1], scope);
  if (op == "~") return Value::string(a.str() + b.str());
  return arith(op, a, b);
}

Value Interp::eval_compare(const Expr& e, const ScopePtr& scope) {
  Value left = eval(*e.kids[0], scope);
  for (size_t k = 0; k < e.ops.size(); ++k) {
    Value right = eval(*e.kids[k + 1], scope);
    const std::string& op = e.ops[k];
    bool r;
    if (op == "==") r = values_equal(left, right);
    else if (op == "!=") r = !values_equal(left, right);
    else if (op == "in") r = value_contains(right, left);
    else if (op == "notin") r = !value_contains(right, left);
    else {
      if (left.is_undefined()) undefined_error(left);
      if (right.is_undefined()) undefined_error(right);
      if (op == "<") r = value_less(left, right);
      else if (op == ">") r = value_less(right, left);
      else if (op == "<=") r = !value_less(right, left);
      else r = !value_less(left, right);
    }
    if (!r) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Value Interp::eval(const Expr& e, const ScopePtr& scope) {
  BudgetDepth depth;
  budget_step();
  switch (e.kind) {
    case EK::Const:
      return e.value;
    case EK::Name: {
      const Value* v = scope->lookup(e.name);
      return v ? *v : Value::undefined("'" + e.name + "' is undefined");
    }
    case EK::List:
    case EK::Tuple: {
      std::vector<Value> items;
      for (auto& k : e.kids) items.push_back(eval(*k, scope));
      return Value::new_list(std::move(items), e.kind == EK::Tuple);
    }
    case EK::Dict: {
      Value d = Value::new_dict();
      for (size_t k = 0; k + 1 < e.kids.size(); k += 2)
        d.dict->set(eval(*e.kids[k], scope), eval(*e.kids[k + 1], scope));
      return d;
    }
    case EK::Attr:
      return get_attr(eval(*e.kids[0], scope), e.name);
    case EK::Item:
      return get_item(eval(*e.kids[0], scope), eval(*e.kids[1], scope));
    case EK::Slice: {
      Value obj = eval(*e.kids[0], scope);
      auto opt = [&](size_t k) { return e.kids[k] ? eval(*e.kids[k], scope) : Value::none(); };
      return slice_value(obj, opt(1), opt(2), opt(3));
    }
    case EK::Call: {
      Value fn = eval(*e.kids[0], scope);
      CallArgs args;
      eval_args(e, 1, scope, args);
      return call(fn, args);
    }
    case EK::Filter:
      return eval_filter(e, scope, nullptr);
    case EK::Test: {
      Value v = eval(*e.kids[0], scope);
      CallArgs args;
      eval_args(e, 1, scope, args);
      return Value::boolean(call_test(*this, e.name, v, args));
    }
    case EK::Unary: {
      Value v = eval(*e.kids[0], scope);
      if (e.name == "not") return Value::boolean(!v.truthy());
      if (v.is_undefined()) undefined_error(v);
      if (!v.is_number()) throw Error("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
      if (e.name == "+") return v.kind == VK::Float ? v : Value::integer(v.as_int());
      if (v.kind == VK::Float) return Value::number(-v.f);
      if (v.as_int() == INT64_MIN) throw Error("integer overflow: result of unary - exceeds 64 bits");
      return Value::integer(-v.as_int());
    }
    case EK::Binary:
      return eval_binary(e, scope);
    case EK::Compare:
      return eval_compare(e, scope);
    case EK::Cond:
      if (eval(*e.kids[0], scope).truthy()) return eval(*e.kids[1], scope);
      return e.kids[2] ? eval(*e.kids[2], scope) : Value::undefined("conditional expression has no else branch");
  }
  return Value();
}

}  // namespace minnow::jinja
