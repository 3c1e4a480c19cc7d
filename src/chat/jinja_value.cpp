#include "chat/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "chat/jinja_arena.h"
#include "chat/jinja_budget.h"
#include "chat/jinja_utf8.h"
#include "common/error.h"

namespace minnow::jinja {

namespace {
// Bounds recursion through nested (or self-containing) lists and dicts: repr, ==, < and JSON.
struct DepthGuard {
  static inline thread_local int depth = 0;
  DepthGuard() {
    budget_step();
    if (++depth > 200) {
      depth = 0;
      throw Error("value nested too deeply (or it contains itself)");
    }
  }
  ~DepthGuard() {
    if (depth > 0) --depth;
  }
};
}  // namespace

namespace {
// Containers whose last owner is being destroyed wait here; the outermost destructor frees them one by one.
thread_local std::vector<Value>* t_pending = nullptr;

void release(Value&& v, std::vector<Value>& sink) {
  if (v.list || v.dict) sink.push_back(std::move(v));
}

template <class Each>
void release_all(Each each) {
  if (t_pending) {
    each(*t_pending);
    return;
  }
  std::vector<Value> pending;
  t_pending = &pending;
  each(pending);
  while (!pending.empty()) {
    Value v = std::move(pending.back());
    pending.pop_back();
  }  // each v's containers, if v held the last reference, add their own children to `pending`
  t_pending = nullptr;
}
}  // namespace

ListData::~ListData() {
  release_all([this](std::vector<Value>& sink) {
    for (auto& v : items) release(std::move(v), sink);
  });
}

DictData::~DictData() {
  release_all([this](std::vector<Value>& sink) {
    for (auto& kv : items) {
      release(std::move(kv.first), sink);
      release(std::move(kv.second), sink);
    }
  });
}

Value Value::undefined(std::string name) {
  Value v;
  v.s = std::move(name);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::None;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::Bool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.kind = Kind::Int;
  v.i = x;
  return v;
}
Value Value::number(double x) {
  Value v;
  v.kind = Kind::Float;
  v.f = x;
  return v;
}
Value Value::string(std::string x) {
  budget_string(x.size());
  Value v;
  v.kind = Kind::String;
  v.s = std::move(x);
  return v;
}
Value Value::new_list(std::vector<Value> items, bool tuple) {
  uint64_t bytes = 0;
  for (auto& x : items) bytes += x.s.size();
  budget_items(items.size(), bytes);
  Value v;
  v.kind = Kind::List;
  v.list = std::make_shared<ListData>();
  v.list->items = std::move(items);
  v.list->tuple = tuple;
  RenderArena::record(v.list);
  return v;
}
Value Value::new_dict() {
  Value v;
  v.kind = Kind::Dict;
  v.dict = std::make_shared<DictData>();
  RenderArena::record(v.dict);
  return v;
}
Value Value::new_namespace() {
  Value v = new_dict();
  v.dict->is_namespace = true;
  return v;
}
Value Value::function(std::string name, std::function<Value(CallArgs&)> fn) {
  Value v;
  v.kind = Kind::Callable;
  v.fn = std::make_shared<Callable>();
  v.fn->name = std::move(name);
  v.fn->fn = std::move(fn);
  return v;
}

bool Value::is_namespace() const { return kind == Kind::Dict && dict->is_namespace; }

bool Value::truthy() const {
  switch (kind) {
    case Kind::Undefined: case Kind::None: return false;
    case Kind::Bool: return b;
    case Kind::Int: return i != 0;
    case Kind::Float: return f != 0.0;
    case Kind::String: return !s.empty();
    case Kind::List: return !list->items.empty();
    case Kind::Dict: return is_namespace() || !dict->items.empty();
    case Kind::Callable: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "NoneType";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::String: return "str";
    case Kind::List: return list->generator ? "generator" : list->tuple ? "tuple" : "list";
    case Kind::Dict: return is_namespace() ? "Namespace" : "dict";
    case Kind::Callable: return "function";
  }
  return "?";
}

std::string py_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  // sci is "[-]D[.DDD]e[+-]XX": split into sign, digits, exponent.
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t epos = sci.find('e');
  int exp = std::stoi(sci.substr(epos + 1));
  std::string digits;
  for (size_t k = 0; k < epos; ++k)
    if (sci[k] != '.') digits.push_back(sci[k]);
  std::string out = neg ? "-" : "";
  int nd = static_cast<int>(digits.size());
  if (exp >= -4 && exp < 16) {
    if (exp < 0) {
      out += "0.";
      out.append(static_cast<size_t>(-exp - 1), '0');
      out += digits;
    } else if (exp + 1 >= nd) {
      out += digits;
      out.append(static_cast<size_t>(exp + 1 - nd), '0');
      out += ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exp + 1));
      out += ".";
      out += digits.substr(static_cast<size_t>(exp + 1));
    }
  } else {
    out += digits.substr(0, 1);
    if (nd > 1) {
      out.push_back('.');
      out += digits.substr(1);
    }
    char eb[16];
    std::snprintf(eb, sizeof eb, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    out += eb;
  }
  return out;
}

std::string py_str_repr(std::string_view s) {
  bool has_sq = s.find('\'') != std::string_view::npos;
  bool has_dq = s.find('"') != std::string_view::npos;
  char q = (has_sq && !has_dq) ? '"' : '\'';
  std::string out(1, q);
  for (char32_t c : utf8_decode(s)) {
    if (c == static_cast<char32_t>(q) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char b[16];
      std::snprintf(b, sizeof b, "\\x%02x", static_cast<unsigned>(c));
      out += b;
    } else if (c >= 0x80 && !py_isprintable(c)) {
      char b[16];
      if (c <= 0xFF) std::snprintf(b, sizeof b, "\\x%02x", static_cast<unsigned>(c));
      else if (c <= 0xFFFF) std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned>(c));
      else std::snprintf(b, sizeof b, "\\U%08x", static_cast<unsigned>(c));
      out += b;
    } else {
      utf8_append(out, c);
    }
  }
  out.push_back(q);
  return out;
}

std::string Value::str() const {
  switch (kind) {
    case Kind::Undefined: return "";
    case Kind::String: return s;
    default: return repr();
  }
}

std::string Value::repr() const {
  DepthGuard guard;
  switch (kind) {
    case Kind::Undefined: return "Undefined";
    case Kind::None: return "None";
    case Kind::Bool: return b ? "True" : "False";
    case Kind::Int: return std::to_string(i);
    case Kind::Float: return py_float_repr(f);
    case Kind::String: return py_str_repr(s);
    case Kind::List: {
      bool t = list->tuple;
      std::string out = t ? "(" : "[";
      for (size_t k = 0; k < list->items.size(); ++k) {
        if (k) out += ", ";
        out += list->items[k].repr();
        budget_string_size(out.size());
      }
      if (t && list->items.size() == 1) out += ",";
      out += t ? ")" : "]";
      return out;
    }
    case Kind::Dict: {
      std::string out = dict->is_namespace ? "<Namespace {" : "{";
      for (size_t k = 0; k < dict->items.size(); ++k) {
        if (k) out += ", ";
        out += dict->items[k].first.repr() + ": " + dict->items[k].second.repr();
        budget_string_size(out.size());
      }
      out += dict->is_namespace ? "}>" : "}";
      return out;
    }
    case Kind::Callable: return fn->is_macro ? "<Macro '" + fn->name + "'>" : "<function " + fn->name + ">";
  }
  return "";
}

const Value* DictData::find(const Value& key) const {
  for (auto& kv : items)
    if (values_equal(kv.first, key)) return &kv.second;
  return nullptr;
}
const Value* DictData::find(std::string_view key) const {
  budget_step(1 + items.size() / 16);
  for (auto& kv : items)
    if (kv.first.kind == Value::Kind::String && kv.first.s == key) return &kv.second;
  return nullptr;
}
void DictData::set(const Value& key, Value v) {
  for (auto& kv : items)
    if (values_equal(kv.first, key)) {
      kv.second = std::move(v);
      return;
    }
  budget_items_size(items.size() + 1);
  budget_items(1, key.s.size() + v.s.size());
  items.emplace_back(key, std::move(v));
}

const Value* CallArgs::get(size_t index, std::string_view name) const {
  if (index < pos.size()) return &pos[index];
  for (auto& kv : kw)
    if (kv.first == name) return &kv.second;
  return nullptr;
}

bool values_equal(const Value& a, const Value& b) {
  using K = Value::Kind;
  DepthGuard guard;
  if (a.is_number() && b.is_number()) {
    if (a.kind == K::Float || b.kind == K::Float) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case K::Undefined: case K::None: return true;
    case K::String: return a.s == b.s;
    case K::List: {
      if (a.list == b.list) return true;
      if (a.list->tuple != b.list->tuple || a.list->items.size() != b.list->items.size()) return false;
      for (size_t k = 0; k < a.list->items.size(); ++k)
        if (!values_equal(a.list->items[k], b.list->items[k])) return false;
      return true;
    }
    case K::Dict: {
      if (a.dict == b.dict) return true;
      if (a.dict->is_namespace || b.dict->is_namespace) return false;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (auto& kv : a.dict->items) {
        const Value* o = b.dict->find(kv.first);
        if (!o || !values_equal(kv.second, *o)) return false;
      }
      return true;
    }
    case K::Callable: return a.fn == b.fn;
    default: return false;
  }
}

bool value_less(const Value& a, const Value& b) {
  using K = Value::Kind;
  DepthGuard guard;
  if (a.is_number() && b.is_number()) {
    if (a.kind == K::Float || b.kind == K::Float) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.kind == K::String && b.kind == K::String) return a.s < b.s;  // UTF-8 byte order = code point order
  if (a.kind == K::List && b.kind == K::List && a.list->tuple == b.list->tuple) {
    auto& x = a.list->items;
    auto& y = b.list->items;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (values_equal(x[k], y[k])) continue;
      return value_less(x[k], y[k]);
    }
    return x.size() < y.size();
  }
  throw Error("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

static void json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out.push_back('"');
  auto put_u = [&](unsigned c) {
    char b[16];
    std::snprintf(b, sizeof b, "\\u%04x", c);
    out += b;
  };
  for (char32_t c : utf8_decode(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          put_u(static_cast<unsigned>(c));
        } else if (ensure_ascii && c >= 0x7F) {
          if (c >= 0x10000) {
            unsigned v = static_cast<unsigned>(c) - 0x10000;
            put_u(0xD800 | (v >> 10));
            put_u(0xDC00 | (v & 0x3FF));
          } else {
            put_u(static_cast<unsigned>(c));
          }
        } else {
          utf8_append(out, c);
        }
    }
  }
  out.push_back('"');
}

static std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return py_float_repr(d);
}

static std::string json_key(const Value& k) {
  using K = Value::Kind;
  switch (k.kind) {
    case K::String: return k.s;
    case K::Int: return std::to_string(k.i);
    case K::Bool: return k.b ? "true" : "false";
    case K::Float: return json_float(k.f);
    case K::None: return "null";
    default: throw Error("keys must be str, int, float, bool or None, not " + k.type_name());
  }
}

static void json_rec(std::string& out, const Value& v, const JsonOptions& opt, int level) {
  using K = Value::Kind;
  DepthGuard guard;
  auto newline = [&](int lvl) {
    budget_string_size(out.size() + 1 + static_cast<size_t>(lvl) * opt.indent.size());
    out.push_back('\n');
    for (int k = 0; k < lvl; ++k) out += opt.indent;
  };
  switch (v.kind) {
    case K::None: out += "null"; return;
    case K::Bool: out += v.b ? "true" : "false"; return;
    case K::Int: out += std::to_string(v.i); return;
    case K::Float: out += json_float(v.f); return;
    case K::String: json_string(out, v.s, opt.ensure_ascii); return;
    case K::List: {
      if (v.list->generator) throw Error("Object of type generator is not JSON serializable");
      auto& items = v.list->items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += opt.item_sep;
        if (opt.has_indent) newline(level + 1);
        json_rec(out, items[k], opt, level + 1);
        budget_string_size(out.size());
      }
      if (opt.has_indent) newline(level);
      out.push_back(']');
      return;
    }
    case K::Dict: {
      if (v.dict->is_namespace) throw Error("Object of type Namespace is not JSON serializable");
      std::vector<std::pair<std::string, const Value*>> items;
      for (auto& kv : v.dict->items) items.emplace_back(json_key(kv.first), &kv.second);
      if (opt.sort_keys)
        std::stable_sort(items.begin(), items.end(), [](auto& a, auto& b) { return a.first < b.first; });
      if (items.empty()) {
        out += "{}";
        return;
      }
      out.push_back('{');
      for (size_t k = 0; k < items.size(); ++k) {
        if (k) out += opt.item_sep;
        if (opt.has_indent) newline(level + 1);
        json_string(out, items[k].first, opt.ensure_ascii);
        out += opt.key_sep;
        json_rec(out, *items[k].second, opt, level + 1);
        budget_string_size(out.size());
      }
      if (opt.has_indent) newline(level);
      out.push_back('}');
      return;
    }
    case K::Undefined: throw Error("Object of type Undefined is not JSON serializable");
    case K::Callable: throw Error("Object of type function is not JSON serializable");
  }
}

std::string to_json(const Value& v, const JsonOptions& opt) {
  std::string out;
  json_rec(out, v, opt, 0);
  return out;
}

}  // namespace minnow::jinja
