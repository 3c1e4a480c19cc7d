// Attribute/item access and the Python methods of str, list and dict that chat templates call.
#include <algorithm>

#include "chat/jinja_budget.h"
#include "chat/jinja_interp.h"
#include "chat/jinja_strings.h"
#include "chat/jinja_utf8.h"
#include "common/error.h"

namespace minnow::jinja {

using VK = Value::Kind;

std::vector<Value> iterate(const Value& v) {
  switch (v.kind) {
    case VK::Undefined: return {};
    case VK::List: {  // a copy: charged to the render's budget
      uint64_t bytes = 0;
      for (auto& x : v.list->items) bytes += x.s.size();
      budget_items(v.list->items.size(), bytes);
      return v.list->items;
    }
    case VK::Dict: {
      if (v.is_namespace()) throw Error("'Namespace' object is not iterable");
      budget_items(v.dict->items.size(), 0);
      std::vector<Value> keys;
      for (auto& kv : v.dict->items) keys.push_back(kv.first);
      return keys;
    }
    case VK::String: {
      std::vector<Value> chars;
      for (char32_t c : utf8_decode(v.s)) {
        std::string one;
        utf8_append(one, c);
        chars.push_back(Value::string(std::move(one)));
      }
      return chars;
    }
    default:
      throw Error("'" + v.type_name() + "' object is not iterable");
  }
}

bool value_contains(const Value& c, const Value& item) {
  switch (c.kind) {
    case VK::Undefined: return false;
    case VK::String:
      if (!item.is_string())
        throw Error("'in <string>' requires string as left operand, not " + item.type_name());
      return c.s.find(item.s) != std::string::npos;
    case VK::List:
      for (auto& x : c.list->items)
        if (values_equal(x, item)) return true;
      return false;
    case VK::Dict:
      if ((item.is_list() && !item.list->tuple) || item.is_dict()) throw Error("unhashable type: '" + item.type_name() + "'");
      return c.dict->find(item) != nullptr;
    default:
      throw Error("argument of type '" + c.type_name() + "' is not iterable");
  }
}

Value slice_value(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  if (obj.is_undefined()) undefined_error(obj);
  // jinja2 compiles slices to a plain Python subscript: other types raise.
  if (!obj.is_string() && !obj.is_list()) throw Error("'" + obj.type_name() + "' object is not subscriptable");
  auto as_idx = [](const Value& v) -> int64_t {
    if (!v.is_int_like()) throw Error("slice indices must be integers or None");
    return v.as_int();
  };
  int64_t step = step_v.is_none() ? 1 : as_idx(step_v);
  if (step == 0) throw Error("slice step cannot be zero");
  std::u32string chars;
  int64_t len;
  if (obj.is_string()) {
    chars = utf8_decode(obj.s);
    len = static_cast<int64_t>(chars.size());
  } else {
    len = static_cast<int64_t>(obj.list->items.size());
  }
  auto adj = [&](const Value& v, int64_t def) {
    if (v.is_none()) return def;
    int64_t x = as_idx(v);
    if (x < 0) {
      x += len;
      if (x < 0) x = step < 0 ? -1 : 0;
    } else if (x >= len) {
      x = step < 0 ? len - 1 : len;
    }
    return x;
  };
  int64_t start = adj(start_v, step < 0 ? len - 1 : 0);
  int64_t stop = adj(stop_v, step < 0 ? -1 : len);
  std::vector<int64_t> idx;
  for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) idx.push_back(k);
  if (obj.is_string()) {
    std::u32string r;
    for (int64_t k : idx) r.push_back(chars[static_cast<size_t>(k)]);
    return Value::string(utf8_encode(r));
  }
  std::vector<Value> r;
  for (int64_t k : idx) r.push_back(obj.list->items[static_cast<size_t>(k)]);
  return Value::new_list(std::move(r), obj.list->tuple);
}

static bool is_dict_method(const std::string& n) {
  return n == "items" || n == "keys" || n == "values" || n == "get" || n == "pop" || n == "update" ||
         n == "copy" || n == "setdefault" || n == "clear" || n == "popitem";
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case VK::Undefined:
      undefined_error(obj);
    case VK::Dict: {
      if (!obj.is_namespace() && is_dict_method(name)) return get_method(obj, name);
      const Value* v = obj.dict->find(std::string_view(name));
      if (v) return *v;
      return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
    }
    case VK::String:
    case VK::List: {
      Value m = get_method(obj, name);
      if (!m.is_undefined()) return m;
      return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
    }
    default:
      return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
  }
}

Value get_item(const Value& obj, const Value& key) {
  auto missing = [&]() {
    return Value::undefined("'" + obj.type_name() + " object' has no attribute " + key.repr());
  };
  switch (obj.kind) {
    case VK::Undefined:
      undefined_error(obj);
    case VK::Dict: {
      if (!obj.is_namespace()) {
        const Value* v = obj.dict->find(key);
        if (v) return *v;
      }
      if (key.is_string()) return get_attr(obj, key.s);
      return missing();
    }
    case VK::List: {
      if (key.is_int_like()) {
        int64_t n = static_cast<int64_t>(obj.list->items.size());
        int64_t k = key.as_int();
        if (k < 0) k += n;
        if (k < 0 || k >= n) return Value::undefined(obj.type_name() + " index out of range");
        return obj.list->items[static_cast<size_t>(k)];
      }
      if (key.is_string()) return get_attr(obj, key.s);
      return missing();
    }
    case VK::String: {
      if (key.is_int_like()) {
        std::u32string cs = utf8_decode(obj.s);
        int64_t n = static_cast<int64_t>(cs.size());
        int64_t k = key.as_int();
        if (k < 0) k += n;
        if (k < 0 || k >= n) return Value::undefined("string index out of range");
        std::string one;
        utf8_append(one, cs[static_cast<size_t>(k)]);
        return Value::string(std::move(one));
      }
      if (key.is_string()) return get_attr(obj, key.s);
      return missing();
    }
    default:
      return missing();
  }
}

// ------------------------------------------------------------------ methods

static const Value& arg(CallArgs& a, size_t i, const char* name, const Value& def) {
  const Value* v = a.get(i, name);
  return v ? *v : def;
}
static const Value& need(CallArgs& a, size_t i, const char* name, const char* method) {
  const Value* v = a.get(i, name);
  if (!v) throw Error(std::string(method) + "() missing required argument '" + name + "'");
  return *v;
}
static const std::string& need_str(const Value& v, const char* method) {
  if (!v.is_string()) throw Error(std::string(method) + "() argument must be str, not " + v.type_name());
  return v.s;
}

static Value string_method(const std::string& s, const std::string& name) {
  auto fn = [&](auto body) { return Value::function(name, [s, body](CallArgs& a) -> Value { return body(s, a); }); };
  static const Value kNone = Value::none();
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    bool l = name != "rstrip", r = name != "lstrip";
    return fn([l, r](const std::string& str, CallArgs& a) {
      const Value& chars = arg(a, 0, "chars", kNone);
      if (!chars.is_none() && !chars.is_string()) throw Error("strip arg must be None or str");
      return Value::string(py_strip(str, chars.is_none() ? nullptr : &chars.s, l, r));
    });
  }
  if (name == "split" || name == "rsplit") {
    bool right = name == "rsplit";
    return fn([right](const std::string& str, CallArgs& a) {
      const Value& sep = arg(a, 0, "sep", kNone);
      static const Value kMinus1 = Value::integer(-1);
      const Value& mx = arg(a, 1, "maxsplit", kMinus1);
      if (!sep.is_none() && !sep.is_string()) throw Error("must be str or None, not " + sep.type_name());
      if (!mx.is_int_like()) throw Error("maxsplit must be an integer");
      std::vector<std::string> parts = py_split(str, sep.is_none() ? nullptr : &sep.s, mx.as_int(), right);
      std::vector<Value> out;
      for (auto& p : parts) out.push_back(Value::string(std::move(p)));
      return Value::new_list(std::move(out));
    });
  }
  if (name == "splitlines") {
    return fn([](const std::string& str, CallArgs& a) {
      std::vector<Value> out;
      for (auto& p : py_splitlines(str, arg(a, 0, "keepends", kNone).truthy())) out.push_back(Value::string(p));
      return Value::new_list(std::move(out));
    });
  }
  if (name == "startswith" || name == "endswith") {
    bool start = name == "startswith";
    return fn([start, name](const std::string& str, CallArgs& a) {
      const Value& p = need(a, 0, "prefix", name.c_str());
      std::vector<Value> cands = p.is_list() ? p.list->items : std::vector<Value>{p};
      for (auto& c : cands) {
        const std::string& x = need_str(c, name.c_str());
        if (x.size() > str.size()) continue;
        if (start ? str.compare(0, x.size(), x) == 0 : str.compare(str.size() - x.size(), x.size(), x) == 0)
          return Value::boolean(true);
      }
      return Value::boolean(false);
    });
  }
  if (name == "lower" || name == "upper" || name == "title" || name == "capitalize" || name == "swapcase") {
    return fn([name](const std::string& str, CallArgs&) { return Value::string(py_case(str, name)); });
  }
  if (name == "replace") {
    return fn([](const std::string& str, CallArgs& a) {
      const std::string& old_s = need_str(need(a, 0, "old", "replace"), "replace");
      const std::string& new_s = need_str(need(a, 1, "new", "replace"), "replace");
      static const Value kMinus1 = Value::integer(-1);
      const Value& cnt = arg(a, 2, "count", kMinus1);
      return Value::string(py_replace(str, old_s, new_s, cnt.is_int_like() ? cnt.as_int() : -1));
    });
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
    return fn([name](const std::string& str, CallArgs& a) {
      const std::string& sub = need_str(need(a, 0, "sub", name.c_str()), name.c_str());
      size_t p = (name[0] == 'r') ? str.rfind(sub) : str.find(sub);
      if (p == std::string::npos) {
        if (name.find("index") != std::string::npos) throw Error("substring not found");
        return Value::integer(-1);
      }
      return Value::integer(static_cast<int64_t>(utf8_length(std::string_view(str).substr(0, p))));
    });
  }
  if (name == "count") {
    return fn([](const std::string& str, CallArgs& a) {
      const std::string& sub = need_str(need(a, 0, "sub", "count"), "count");
      if (sub.empty()) return Value::integer(static_cast<int64_t>(utf8_length(str) + 1));
      int64_t n = 0;
      for (size_t p = str.find(sub); p != std::string::npos; p = str.find(sub, p + sub.size())) ++n;
      return Value::integer(n);
    });
  }
  if (name == "join") {
    return fn([](const std::string& str, CallArgs& a) {
      std::string out;
      bool first = true;
      for (auto& x : iterate(need(a, 0, "iterable", "join"))) {
        if (!x.is_string()) throw Error("sequence item: expected str instance, " + x.type_name() + " found");
        if (!first) out += str;
        out += x.s;
        budget_string_size(out.size());
        first = false;
      }
      return Value::string(std::move(out));
    });
  }
  if (name == "format") {
    return fn([](const std::string& str, CallArgs& a) { return Value::string(py_format(str, a)); });
  }
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "isupper" ||
      name == "islower") {
    return fn([name](const std::string& str, CallArgs&) { return Value::boolean(py_is(str, name)); });
  }
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

static Value list_method(const Value& obj, const std::string& name) {
  std::shared_ptr<ListData> l = obj.list;
  auto fn = [&](auto body) { return Value::function(name, [l, body](CallArgs& a) -> Value { return body(*l, a); }); };
  bool tuple = l->tuple;
  if (!tuple && name == "append")
    return fn([](ListData& d, CallArgs& a) {
      const Value& x = need(a, 0, "object", "append");
      budget_items_size(d.items.size() + 1);
      budget_items(1, x.s.size());
      d.items.push_back(x);
      return Value::none();
    });
  if (!tuple && name == "extend")
    return fn([](ListData& d, CallArgs& a) {
      std::vector<Value> more = iterate(need(a, 0, "iterable", "extend"));
      uint64_t bytes = 0;
      for (auto& x : more) bytes += x.s.size();
      budget_items_size(d.items.size() + more.size());
      budget_items(more.size(), bytes);
      for (auto& x : more) d.items.push_back(std::move(x));
      return Value::none();
    });
  if (!tuple && name == "insert")
    return fn([](ListData& d, CallArgs& a) {
      const Value& i = need(a, 0, "index", "insert");
      int64_t n = static_cast<int64_t>(d.items.size());
      int64_t k = i.as_int();
      if (k < 0) k = std::max<int64_t>(0, k + n);
      k = std::min(k, n);
      budget_items_size(d.items.size() + 1);
      budget_items(1, need(a, 1, "object", "insert").s.size());
      d.items.insert(d.items.begin() + k, need(a, 1, "object", "insert"));
      return Value::none();
    });
  if (!tuple && name == "pop")
    return fn([](ListData& d, CallArgs& a) {
      if (d.items.empty()) throw Error("pop from empty list");
      int64_t n = static_cast<int64_t>(d.items.size());
      static const Value kLast = Value::integer(-1);
      int64_t k = arg(a, 0, "index", kLast).as_int();
      if (k < 0) k += n;
      if (k < 0 || k >= n) throw Error("pop index out of range");
      Value v = d.items[static_cast<size_t>(k)];
      d.items.erase(d.items.begin() + k);
      return v;
    });
  if (!tuple && name == "remove")
    return fn([](ListData& d, CallArgs& a) {
      const Value& x = need(a, 0, "value", "remove");
      for (size_t k = 0; k < d.items.size(); ++k)
        if (values_equal(d.items[k], x)) {
          d.items.erase(d.items.begin() + static_cast<int64_t>(k));
          return Value::none();
        }
      throw Error("list.remove(x): x not in list");
    });
  if (!tuple && name == "reverse")
    return fn([](ListData& d, CallArgs&) {
      std::reverse(d.items.begin(), d.items.end());
      return Value::none();
    });
  if (!tuple && name == "copy") return fn([](ListData& d, CallArgs&) { return Value::new_list(d.items); });
  if (name == "index")
    return fn([](ListData& d, CallArgs& a) {
      const Value& x = need(a, 0, "value", "index");
      for (size_t k = 0; k < d.items.size(); ++k)
        if (values_equal(d.items[k], x)) return Value::integer(static_cast<int64_t>(k));
      throw Error(x.repr() + " is not in list");
    });
  if (name == "count")
    return fn([](ListData& d, CallArgs& a) {
      const Value& x = need(a, 0, "value", "count");
      int64_t n = 0;
      for (auto& y : d.items) n += values_equal(x, y) ? 1 : 0;
      return Value::integer(n);
    });
  return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
}

static Value dict_method(const Value& obj, const std::string& name) {
  std::shared_ptr<DictData> dd = obj.dict;
  auto fn = [&](auto body) { return Value::function(name, [dd, body](CallArgs& a) -> Value { return body(*dd, a); }); };
  if (name == "items")
    return fn([](DictData& d, CallArgs&) {
      std::vector<Value> out;
      for (auto& kv : d.items) out.push_back(Value::new_list({kv.first, kv.second}, true));
      return Value::new_list(std::move(out));
    });
  if (name == "keys")
    return fn([](DictData& d, CallArgs&) {
      std::vector<Value> out;
      for (auto& kv : d.items) out.push_back(kv.first);
      return Value::new_list(std::move(out));
    });
  if (name == "values")
    return fn([](DictData& d, CallArgs&) {
      std::vector<Value> out;
      for (auto& kv : d.items) out.push_back(kv.second);
      return Value::new_list(std::move(out));
    });
  if (name == "get")
    return fn([](DictData& d, CallArgs& a) {
      static const Value kNone = Value::none();
      const Value* v = d.find(need(a, 0, "key", "get"));
      return v ? *v : arg(a, 1, "default", kNone);
    });
  if (name == "pop")
    return fn([](DictData& d, CallArgs& a) {
      const Value& key = need(a, 0, "key", "pop");
      for (size_t k = 0; k < d.items.size(); ++k)
        if (values_equal(d.items[k].first, key)) {
          Value v = d.items[k].second;
          d.items.erase(d.items.begin() + static_cast<int64_t>(k));
          return v;
        }
      const Value* def = a.get(1, "default");
      if (!def) throw Error("KeyError: " + key.repr());
      return *def;
    });
  if (name == "setdefault")
    return fn([](DictData& d, CallArgs& a) {
      static const Value kNone = Value::none();
      const Value& key = need(a, 0, "key", "setdefault");
      const Value* v = d.find(key);
      if (v) return *v;
      d.set(key, arg(a, 1, "default", kNone));
      return *d.find(key);
    });
  if (name == "update")
    return fn([](DictData& d, CallArgs& a) {
      if (!a.pos.empty()) {
        if (!a.pos[0].is_dict()) throw Error("dict.update() argument must be a dict");
        for (auto& kv : a.pos[0].dict->items) d.set(kv.first, kv.second);
      }
      for (auto& kv : a.kw) d.set(Value::string(kv.first), kv.second);
      return Value::none();
    });
  if (name == "copy")
    return fn([](DictData& d, CallArgs&) {
      Value v = Value::new_dict();
      v.dict->items = d.items;
      return v;
    });
  if (name == "clear")
    return fn([](DictData& d, CallArgs&) {
      d.items.clear();
      return Value::none();
    });
  return Value::undefined("'dict object' has no attribute '" + name + "'");
}

Value get_method(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case VK::String: return string_method(obj.s, name);
    case VK::List: return list_method(obj, name);
    case VK::Dict:
      if (obj.is_namespace()) break;
      return dict_method(obj, name);
    default: break;
  }
  return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
}

}  // namespace minnow::jinja
