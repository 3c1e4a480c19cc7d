// Jinja filters, tests and globals (jinja2's builtins as chat templates use them, plus HF's tojson,
// raise_exception and strftime_now).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "chat/jinja_budget.h"
#include "chat/jinja_interp.h"
#include "chat/jinja_strings.h"
#include "chat/jinja_utf8.h"
#include "common/error.h"

namespace minnow::jinja {

using VK = Value::Kind;

namespace {

const Value kNone = Value::none();
const Value kFalse = Value::boolean(false);

const Value& opt(CallArgs& a, size_t i, const char* name, const Value& def) {
  const Value* v = a.get(i, name);
  return v ? *v : def;
}

// jinja2's make_attrgetter: "a.b.0" walks items/attributes.
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool digits = !part.empty() && part.size() <= 18 && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    cur = get_item(cur, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(py_case(v.s, "lower"));
  return v;
}

std::string filter_str_arg(const Value& v) { return v.is_string() ? v.s : v.str(); }

Value do_join(const Value& v, CallArgs& a) {
  static const Value kEmpty = Value::string("");
  std::string sep = opt(a, 0, "d", kEmpty).str();
  const Value& attr = opt(a, 1, "attribute", kNone);
  std::string out;
  bool first = true;
  for (auto& x : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += attr.is_none() ? x.str() : attr_path(x, attr.str()).str();
    budget_string_size(out.size());
  }
  return Value::string(std::move(out));
}

Value do_indent(const Value& v, CallArgs& a) {
  static const Value kFour = Value::integer(4);
  const Value& width = opt(a, 0, "width", kFour);
  bool first = opt(a, 1, "first", kFalse).truthy();
  bool blank = opt(a, 2, "blank", kFalse).truthy();
  if (!width.is_string()) budget_string_size(static_cast<size_t>(std::max<int64_t>(0, width.as_int())));
  std::string ind = width.is_string() ? width.s : std::string(static_cast<size_t>(std::max<int64_t>(0, width.as_int())), ' ');
  if (v.is_undefined()) undefined_error(v);
  if (!v.is_string()) throw Error("indent filter needs a string, not " + v.type_name());
  std::string s = v.s + "\n";
  std::vector<std::string> lines = py_splitlines(s, false);
  std::string rv;
  if (blank) {
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k) rv += "\n" + ind;
      rv += lines[k];
      budget_string_size(rv.size());
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t k = 1; k < lines.size(); ++k) {
      rv += "\n";
      if (!lines[k].empty()) rv += ind;
      rv += lines[k];
      budget_string_size(rv.size());
    }
  }
  if (first) rv = ind + rv;
  return Value::string(std::move(rv));
}

Value do_tojson(const Value& v, CallArgs& a) {
  JsonOptions o;
  const Value& indent = opt(a, 0, "indent", kNone);
  if (!indent.is_none()) {
    o.has_indent = true;
    if (!indent.is_string()) budget_string_size(static_cast<size_t>(std::max<int64_t>(0, indent.as_int())));
    o.indent = indent.is_string() ? indent.s : std::string(static_cast<size_t>(std::max<int64_t>(0, indent.as_int())), ' ');
    o.item_sep = ",";
  }
  for (auto& kv : a.kw) {
    if (kv.first == "separators" && kv.second.is_list() && kv.second.list->items.size() == 2) {
      o.item_sep = kv.second.list->items[0].str();
      o.key_sep = kv.second.list->items[1].str();
    } else if (kv.first == "sort_keys") {
      o.sort_keys = kv.second.truthy();
    } else if (kv.first == "ensure_ascii") {
      o.ensure_ascii = kv.second.truthy();
    }
  }
  return Value::string(to_json(v, o));
}

std::vector<Value> sorted_values(std::vector<Value> items, bool reverse, bool case_sensitive, const Value& attr) {
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& x : items) {
    Value k = attr.is_none() ? x : attr_path(x, attr.str());
    keyed.emplace_back(sort_key(k, case_sensitive), x);
  }
  std::stable_sort(keyed.begin(), keyed.end(), [reverse](auto& p, auto& q) {
    return reverse ? value_less(q.first, p.first) : value_less(p.first, q.first);
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(kv.second);
  return out;
}

// jinja2's map, select, reject, selectattr and rejectattr return generators: a list flagged as one.
Value generator(std::vector<Value> items = {}) {
  Value v = Value::new_list(std::move(items));
  v.list->generator = true;
  return v;
}

Value select_impl(Interp& in, const Value& v, CallArgs& a, bool by_attr, bool keep) {
  std::vector<Value> out;
  if (!v.truthy()) return generator();  // jinja2: `if value:` before iterating
  size_t k0 = by_attr ? 1 : 0;
  std::string attr = by_attr ? (a.pos.empty() ? throw Error("selectattr needs an attribute name") : a.pos[0].str()) : "";
  for (auto& x : iterate(v)) {
    Value item = by_attr ? attr_path(x, attr) : x;
    bool ok;
    if (a.pos.size() <= k0) {
      ok = item.truthy();
    } else {
      CallArgs targs;
      for (size_t k = k0 + 1; k < a.pos.size(); ++k) targs.pos.push_back(a.pos[k]);
      targs.kw = a.kw;
      ok = call_test(in, a.pos[k0].str(), item, targs);
    }
    if (ok == keep) out.push_back(x);
  }
  return generator(std::move(out));
}

Value do_map(Interp& in, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  if (!v.truthy()) return generator();  // jinja2: `if value:` before iterating
  const Value* attr = nullptr;
  const Value* def = nullptr;
  for (auto& kv : a.kw) {
    if (kv.first == "attribute") attr = &kv.second;
    if (kv.first == "default") def = &kv.second;
  }
  if (attr) {
    for (auto& x : iterate(v)) {
      Value r = attr_path(x, attr->str());
      if (r.is_undefined() && def) r = *def;
      out.push_back(r);
    }
    return generator(std::move(out));
  }
  if (a.pos.empty()) throw Error("map requires a filter name or attribute=");
  std::string fname = a.pos[0].str();
  CallArgs rest;
  for (size_t k = 1; k < a.pos.size(); ++k) rest.pos.push_back(a.pos[k]);
  rest.kw = a.kw;
  for (auto& x : iterate(v)) {
    CallArgs c = rest;
    out.push_back(call_filter(in, fname, x, c));
  }
  return generator(std::move(out));
}

Value do_round(const Value& v, CallArgs& a) {
  static const Value kZero = Value::integer(0);
  static const Value kCommon = Value::string("common");
  int64_t prec = opt(a, 0, "precision", kZero).as_int();
  std::string method = opt(a, 1, "method", kCommon).str();
  if (!v.is_number()) throw Error("round filter needs a number, not " + v.type_name());
  if (method == "common" && v.is_int_like() && prec >= 0) return Value::integer(v.as_int());  // round(int) is int
  double x = v.as_double();
  double m = std::pow(10.0, static_cast<double>(prec));
  double r;
  if (method == "common") {  // Python's round(): correctly rounded, ties to even
    if (prec == 0) {
      r = std::nearbyint(x);
    } else if (prec > 0) {
      if (prec > 300 || !std::isfinite(x)) return Value::number(x);
      std::vector<char> buf(static_cast<size_t>(prec) + 340);
      std::snprintf(buf.data(), buf.size(), "%.*f", static_cast<int>(prec), x);
      r = std::strtod(buf.data(), nullptr);
    } else {
      double p10 = std::pow(10.0, static_cast<double>(-prec));
      r = std::nearbyint(x / p10) * p10;
    }
  } else if (method == "ceil") {
    r = std::ceil(x * m) / m;
  } else if (method == "floor") {
    r = std::floor(x * m) / m;
  } else {
    throw Error("method must be common, ceil or floor");
  }
  return Value::number(r);
}

Value to_int(const Value& v, const Value& def) {
  switch (v.kind) {
    case VK::Int: return v;
    case VK::Bool: return Value::integer(v.as_int());
    case VK::Float:
      if (!std::isfinite(v.f)) return def;
      return Value::integer(static_cast<int64_t>(std::trunc(v.f)));
    case VK::String: {
      std::string s = py_strip(v.s, nullptr, true, true);
      std::string t;
      for (char c : s)
        if (c != '_') t.push_back(c);
      char* end = nullptr;
      errno = 0;
      long long n = std::strtoll(t.c_str(), &end, 10);
      if (!t.empty() && end && *end == '\0' && errno == 0) return Value::integer(n);
      double d = std::strtod(t.c_str(), &end);
      if (!t.empty() && end && *end == '\0' && std::isfinite(d)) return Value::integer(static_cast<int64_t>(std::trunc(d)));
      return def;
    }
    default:
      return def;
  }
}

Value to_float(const Value& v, const Value& def) {
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string()) {
    std::string s = py_strip(v.s, nullptr, true, true);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == '\0') return Value::number(d);
  }
  return def;
}

}  // namespace

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

namespace {

std::string do_title(const std::string& s) {
  // jinja2: split on runs of [-\s({\[<], upper-case each piece's first char, lower-case the rest.
  std::u32string cs = utf8_decode(s);
  auto is_sep = [](char32_t c) {
    return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c);
  };
  std::string out;
  size_t i = 0;
  while (i < cs.size()) {
    size_t j = i;
    bool sep = is_sep(cs[i]);
    while (j < cs.size() && is_sep(cs[j]) == sep) ++j;
    for (size_t k = i; k < j; ++k) utf8_append(out, sep ? cs[k] : (k == i ? py_upper(cs[k]) : py_lower(cs[k])));
    i = j;
  }
  return out;
}

size_t length_of(const Value& v) {
  switch (v.kind) {
    case VK::Undefined: return 0;
    case VK::String: return utf8_length(v.s);
    case VK::List: return v.list->items.size();
    case VK::Dict: return v.dict->items.size();
    default: throw Error("object of type '" + v.type_name() + "' has no len()");
  }
}

}  // namespace

Value call_filter(Interp& in, const std::string& name, const Value& v, CallArgs& a) {
  if (name == "safe") {
    Value r = Value::string(v.str());
    r.safe = true;
    return r;
  }
  if (name == "tojson") return do_tojson(v, a);
  if (name == "trim") {
    const Value& chars = opt(a, 0, "chars", kNone);
    std::string cs = chars.is_none() ? "" : chars.str();
    return Value::string(py_strip(v.str(), chars.is_none() ? nullptr : &cs, true, true));
  }
  if (name == "upper" || name == "lower" || name == "capitalize") return Value::string(py_case(v.str(), name));
  if (name == "title") return Value::string(do_title(v.str()));
  if (name == "length" || name == "count") return Value::integer(static_cast<int64_t>(length_of(v)));
  if (name == "default" || name == "d") {
    static const Value kEmpty = Value::string("");
    const Value& def = opt(a, 0, "default_value", kEmpty);
    bool boolean = opt(a, 1, "boolean", kFalse).truthy();
    if (v.is_undefined() || (boolean && !v.truthy())) return def;
    return v;
  }
  if (name == "join") return do_join(v, a);
  if (name == "replace") {
    const Value* o = a.get(0, "old");
    const Value* n = a.get(1, "new");
    if (!o || !n) throw Error("replace filter needs old and new strings");
    static const Value kNoCount = Value::none();
    const Value& cnt = opt(a, 2, "count", kNoCount);
    return Value::string(py_replace(v.str(), filter_str_arg(*o), filter_str_arg(*n), cnt.is_none() ? -1 : cnt.as_int()));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::new_list();
    if (!v.is_dict()) throw Error("can only get item pairs from a mapping");
    CallArgs none;
    return in.call(get_method(v, "items"), none);
  }
  if (name == "dictsort") {
    if (!v.is_dict()) throw Error("dictsort filter needs a mapping");
    bool cs = opt(a, 0, "case_sensitive", kFalse).truthy();
    static const Value kKey = Value::string("key");
    std::string by = opt(a, 1, "by", kKey).str();
    bool rev = opt(a, 2, "reverse", kFalse).truthy();
    size_t pos = by == "key" ? 0 : by == "value" ? 1 : throw Error("You can only sort by either \"key\" or \"value\"");
    std::vector<Value> pairs;
    for (auto& kv : v.dict->items) pairs.push_back(Value::new_list({kv.first, kv.second}, true));
    std::vector<std::pair<Value, Value>> keyed;
    for (auto& p : pairs) keyed.emplace_back(sort_key(p.list->items[pos], cs), p);
    std::stable_sort(keyed.begin(), keyed.end(), [rev](auto& x, auto& y) {
      return rev ? value_less(y.first, x.first) : value_less(x.first, y.first);
    });
    std::vector<Value> out;
    for (auto& kv : keyed) out.push_back(kv.second);
    return Value::new_list(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr") return select_impl(in, v, a, true, name == "selectattr");
  if (name == "select" || name == "reject") return select_impl(in, v, a, false, name == "select");
  if (name == "map") return do_map(in, v, a);
  if (name == "first") {
    std::vector<Value> items = iterate(v);
    return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
  }
  if (name == "last") {
    std::vector<Value> items = iterate(v);
    return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
  }
  if (name == "string") return Value::string(v.str());
  if ((name == "int" || name == "float") && v.is_undefined()) undefined_error(v);  // int(Undefined) raises
  if (name == "int") {
    static const Value kZero = Value::integer(0);
    return to_int(v, opt(a, 0, "default", kZero));
  }
  if (name == "float") {
    static const Value kZero = Value::number(0.0);
    return to_float(v, opt(a, 0, "default", kZero));
  }
  if (name == "list") return Value::new_list(iterate(v));
  if (name == "indent") return do_indent(v, a);
  if (name == "unique") {
    bool cs = opt(a, 0, "case_sensitive", kFalse).truthy();
    const Value& attr = opt(a, 1, "attribute", kNone);
    std::vector<Value> seen, out;
    for (auto& x : iterate(v)) {
      Value k = sort_key(attr.is_none() ? x : attr_path(x, attr.str()), cs);
      if ((k.is_list() && !k.list->tuple) || k.is_dict()) throw Error("unhashable type: '" + k.type_name() + "'");
      bool dup = false;
      budget_step(seen.size());
      for (auto& s : seen)
        if (values_equal(s, k)) dup = true;
      if (!dup) {
        seen.push_back(k);
        out.push_back(x);
      }
    }
    return Value::new_list(std::move(out));
  }
  if (name == "sort") {
    bool rev = opt(a, 0, "reverse", kFalse).truthy();
    bool cs = opt(a, 1, "case_sensitive", kFalse).truthy();
    const Value& attr = opt(a, 2, "attribute", kNone);
    return Value::new_list(sorted_values(iterate(v), rev, cs, attr));
  }
  if (name == "min" || name == "max") {
    bool cs = opt(a, 0, "case_sensitive", kFalse).truthy();
    const Value& attr = opt(a, 1, "attribute", kNone);
    std::vector<Value> s = sorted_values(iterate(v), false, cs, attr);
    if (s.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    if (name == "min") return s.front();
    // max: the first of the largest (stable), as Python's max()
    Value best = s.back();
    for (auto& x : s) {
      Value k1 = sort_key(attr.is_none() ? x : attr_path(x, attr.str()), cs);
      Value k2 = sort_key(attr.is_none() ? best : attr_path(best, attr.str()), cs);
      if (values_equal(k1, k2)) return x;
    }
    return best;
  }
  if (name == "sum") {
    const Value& attr = opt(a, 0, "attribute", kNone);
    static const Value kZero = Value::integer(0);
    Value acc = opt(a, 1, "start", kZero);
    for (auto& x : iterate(v)) {
      Value y = attr.is_none() ? x : attr_path(x, attr.str());
      if (!acc.is_number() || !y.is_number()) throw Error("sum filter needs numbers");
      if (acc.kind == VK::Float || y.kind == VK::Float) acc = Value::number(acc.as_double() + y.as_double());
      else {
        int64_t r = 0;
        if (__builtin_add_overflow(acc.as_int(), y.as_int(), &r)) throw Error("integer overflow: sum exceeds 64 bits");
        acc = Value::integer(r);
      }
    }
    return acc;
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::u32string cs = utf8_decode(v.s);
      std::reverse(cs.begin(), cs.end());
      return Value::string(utf8_encode(cs));
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::new_list(std::move(items));
  }
  if (name == "abs") {
    if (v.kind == VK::Float) return Value::number(std::fabs(v.f));
    if (v.is_int_like()) {
      if (v.as_int() == INT64_MIN) throw Error("integer overflow: abs() exceeds 64 bits");
      return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
    }
    throw Error("bad operand type for abs(): '" + v.type_name() + "'");
  }
  if (name == "round") return do_round(v, a);
  if (name == "wordcount") {
    int64_t n = 0;
    bool in_word = false;
    for (char32_t c : utf8_decode(v.str())) {
      bool w = py_isalnum(c) || c == '_';
      if (w && !in_word) ++n;
      in_word = w;
    }
    return Value::integer(n);
  }
  if (name == "escape" || name == "e" || name == "forceescape") {
    if (v.is_string() && v.safe && name != "forceescape") return v;
    Value r = Value::string(html_escape(v.str()));
    r.safe = true;
    return r;
  }
  if (name == "attr") {
    if (a.pos.empty()) throw Error("attr filter needs a name");
    return get_attr(v, a.pos[0].str());
  }
  if (name == "format") {
    if (!a.pos.empty() && !a.kw.empty()) throw Error("can't handle positional and keyword arguments at the same time");
    if (!a.kw.empty()) {
      Value d = Value::new_dict();
      for (auto& kv : a.kw) d.dict->set(Value::string(kv.first), kv.second);
      return Value::string(py_percent_format(v.str(), d));
    }
    return Value::string(py_percent_format(v.str(), Value::new_list(a.pos, true)));
  }
  if (name == "batch") {
    if (a.pos.empty()) throw Error("batch filter needs a size");
    int64_t n = a.pos[0].as_int();
    if (n <= 0) throw Error("batch size must be positive");
    std::vector<Value> out, cur;
    for (auto& x : iterate(v)) {
      cur.push_back(x);
      if (static_cast<int64_t>(cur.size()) == n) {
        out.push_back(Value::new_list(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (a.pos.size() > 1)
        while (static_cast<int64_t>(cur.size()) < n) {
          cur.push_back(a.pos[1]);
          budget_items_size(cur.size());
        }
      out.push_back(Value::new_list(std::move(cur)));
    }
    return Value::new_list(std::move(out));
  }
  throw Error("unsupported filter '" + name + "'");
}

bool call_test(Interp& in, const std::string& name, const Value& v, CallArgs& a) {
  auto arg0 = [&]() -> const Value& {
    if (a.pos.empty()) throw Error("test '" + name + "' needs an argument");
    return a.pos[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && !v.is_namespace();
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict();
  if (name == "sequence") return v.is_undefined() || v.is_string() || v.is_list() || (v.is_dict() && !v.is_namespace());
  if (name == "number") return v.is_number();
  if (name == "integer") return v.kind == VK::Int;
  if (name == "float") return v.kind == VK::Float;
  if (name == "boolean") return v.kind == VK::Bool;
  if (name == "true") return v.kind == VK::Bool && v.b;
  if (name == "false") return v.kind == VK::Bool && !v.b;
  if (name == "callable") return v.kind == VK::Callable || v.is_undefined();  // jinja2's Undefined has __call__
  if (name == "equalto" || name == "eq" || name == "==") return values_equal(v, arg0());
  if (name == "ne" || name == "!=") return !values_equal(v, arg0());
  if (name == "lt" || name == "lessthan" || name == "<") return value_less(v, arg0());
  if (name == "gt" || name == "greaterthan" || name == ">") return value_less(arg0(), v);
  if (name == "le" || name == "<=") return !value_less(arg0(), v);
  if (name == "ge" || name == ">=") return !value_less(v, arg0());
  if (name == "in") return value_contains(arg0(), v);
  if (name == "sameas") {
    const Value& o = arg0();
    if (v.kind != o.kind) return false;
    if (v.is_list()) return v.list == o.list;
    if (v.is_dict()) return v.dict == o.dict;
    return values_equal(v, o);
  }
  if (name == "lower" || name == "upper") return py_is(v.str(), name == "lower" ? "islower" : "isupper");
  if (name == "odd" || name == "even" || name == "divisibleby") {
    // Python: value % n, for ints and floats alike.
    const Value& d = name == "divisibleby" ? arg0() : Value::integer(2);
    if (!v.is_number() || !d.is_number()) {
      if (v.is_undefined()) undefined_error(v);
      throw Error("test '" + name + "' needs a number, not " + v.type_name());
    }
    if (d.as_double() == 0) throw Error("integer division or modulo by zero");
    double m;
    if (v.kind == VK::Float || d.kind == VK::Float) {
      m = std::fmod(v.as_double(), d.as_double());
      if (m != 0 && ((m < 0) != (d.as_double() < 0))) m += d.as_double();
    } else {
      int64_t r = d.as_int() == -1 ? 0 : v.as_int() % d.as_int();  // INT64_MIN % -1 traps
      if (r != 0 && ((r < 0) != (d.as_int() < 0))) r += d.as_int();
      m = static_cast<double>(r);
    }
    if (name == "odd") return m == 1;
    return m == 0;
  }
  if (name == "escaped") return false;
  (void)in;
  throw Error("unsupported test '" + name + "'");
}

static std::string strftime_now(const std::string& fmt) {
  std::tm tm{};
  const char* fixed = std::getenv("MINNOW_FIXED_DATE");
  if (fixed && *fixed) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    if (std::sscanf(fixed, "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &s) < 3)
      throw Error("MINNOW_FIXED_DATE must look like YYYY-MM-DD[ HH:MM:SS]");
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    std::time_t t = timegm(&tm);
    gmtime_r(&t, &tm);
  } else {
    std::time_t t = std::time(nullptr);
    localtime_r(&t, &tm);
  }
  if (fmt.empty()) return "";
  std::vector<char> buf(fmt.size() * 8 + 64);
  size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
  return std::string(buf.data(), n);
}

void install_globals(Scope& g) {
  g.vars["range"] = Value::function("range", [](CallArgs& a) {
    if (a.pos.empty() || a.pos.size() > 3) throw Error("range expected 1 to 3 arguments");
    for (auto& x : a.pos)
      if (!x.is_int_like()) throw Error("range() arguments must be integers");
    int64_t start = 0, stop, step = 1;
    if (a.pos.size() == 1) {
      stop = a.pos[0].as_int();
    } else {
      start = a.pos[0].as_int();
      stop = a.pos[1].as_int();
      if (a.pos.size() == 3) step = a.pos[2].as_int();
    }
    if (step == 0) throw Error("range() arg 3 must not be zero");
    // The length in 128-bit arithmetic (stop - start can exceed 64 bits); the loop counts, so k never overflows.
    __extension__ using Wide = __int128;
    const Wide span = static_cast<Wide>(stop) - start;
    const Wide st = step;
    const Wide count128 = st > 0 ? (span > 0 ? (span + st - 1) / st : 0) : (span < 0 ? (-span - st - 1) / -st : 0);
    if (count128 > 1000000) throw Error("range() of more than a million items is not supported");
    const size_t count = static_cast<size_t>(count128);
    std::vector<Value> out;
    out.reserve(count);
    for (size_t k = 0; k < count; ++k)
      out.push_back(Value::integer(static_cast<int64_t>(start + st * static_cast<Wide>(k))));
    return Value::new_list(std::move(out));
  });
  g.vars["dict"] = Value::function("dict", [](CallArgs& a) {
    Value d = Value::new_dict();
    if (!a.pos.empty()) {
      if (a.pos[0].is_dict()) {
        for (auto& kv : a.pos[0].dict->items) d.dict->set(kv.first, kv.second);
      } else {
        for (auto& p : iterate(a.pos[0])) {
          if (!p.is_list() || p.list->items.size() != 2) throw Error("dict() needs pairs");
          d.dict->set(p.list->items[0], p.list->items[1]);
        }
      }
    }
    for (auto& kv : a.kw) d.dict->set(Value::string(kv.first), kv.second);
    return d;
  });
  g.vars["namespace"] = Value::function("namespace", [](CallArgs& a) {
    Value ns = Value::new_namespace();
    if (!a.pos.empty() && a.pos[0].is_dict())
      for (auto& kv : a.pos[0].dict->items) ns.dict->set(kv.first, kv.second);
    for (auto& kv : a.kw) ns.dict->set(Value::string(kv.first), kv.second);
    return ns;
  });
  g.vars["raise_exception"] = Value::function("raise_exception", [](CallArgs& a) -> Value {
    std::string msg = a.pos.empty() ? std::string("(no message)") : a.pos[0].str();
    throw Error("chat template raised an exception: " + msg);
  });
  g.vars["strftime_now"] = Value::function("strftime_now", [](CallArgs& a) {
    return Value::string(strftime_now(a.pos.empty() ? std::string() : a.pos[0].str()));
  });
}

}  // namespace minnow::jinja
