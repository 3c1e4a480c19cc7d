#pragma once
// The dynamic value type of the Jinja engine, with Python semantics: truthiness, str(), repr(), ==, <,
// and json.dumps (as Hugging Face's tojson calls it). Lists and dicts are shared references (as in Python),
// so `list.append` and `set ns.attr = v` mutate in place. Dicts keep insertion order.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace minnow::jinja {

struct Value;
struct ListData;
struct DictData;
struct Callable;

struct Value {
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Callable };
  Kind kind = Kind::Undefined;
  bool b = false;
  bool safe = false;  // String: jinja2 Markup (from |safe or |escape); `markup + str` escapes the str
  int64_t i = 0;
  double f = 0;
  std::string s;  // String: its UTF-8 bytes. Undefined: the name (for error messages).
  std::shared_ptr<ListData> list;
  std::shared_ptr<DictData> dict;
  std::shared_ptr<Callable> fn;

  static Value undefined(std::string name = "");
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value new_list(std::vector<Value> items = {}, bool tuple = false);
  static Value new_dict();
  static Value new_namespace();
  static Value function(std::string name, std::function<Value(struct CallArgs&)> fn);

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
  bool is_int_like() const { return kind == Kind::Int || kind == Kind::Bool; }  // Python: bool is an int
  bool is_number() const { return is_int_like() || kind == Kind::Float; }
  bool is_namespace() const;
  int64_t as_int() const { return kind == Kind::Bool ? (b ? 1 : 0) : i; }
  double as_double() const { return kind == Kind::Float ? f : static_cast<double>(as_int()); }

  bool truthy() const;
  std::string str() const;   // Python str(); Undefined renders as ''
  std::string repr() const;  // Python repr()
  std::string type_name() const;  // Python type name, for error messages
};

// Destroying a container frees the containers it held without recursing (a chain a million lists deep is
// freed in a loop, not a million nested destructor calls).
struct ListData {
  std::vector<Value> items;
  bool tuple = false;
  bool generator = false;  // jinja2 returns a generator here (map, select, reject...): not JSON serializable
  ListData() = default;
  ListData(const ListData&) = default;
  ListData& operator=(const ListData&) = default;
  ~ListData();
};

// Insertion-ordered mapping; small, so lookups are linear.
struct DictData {
  std::vector<std::pair<Value, Value>> items;
  bool is_namespace = false;
  DictData() = default;
  DictData(const DictData&) = default;
  DictData& operator=(const DictData&) = default;
  ~DictData();
  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  void set(const Value& key, Value v);
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  // Argument by position or keyword, removing the keyword from kw; nullptr if absent.
  const Value* get(size_t index, std::string_view name) const;
};

struct Callable {
  std::string name;
  bool is_macro = false;  // repr "<Macro 'name'>" as jinja2
  std::function<Value(CallArgs&)> fn;
};

bool values_equal(const Value& a, const Value& b);
// Python's a < b; throws Error for unorderable types.
bool value_less(const Value& a, const Value& b);

struct JsonOptions {
  std::string indent;        // used only when has_indent
  bool has_indent = false;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// json.dumps; throws Error for values JSON can't hold (undefined, callables).
std::string to_json(const Value& v, const JsonOptions& opt);

std::string py_float_repr(double d);
std::string py_str_repr(std::string_view s);

}  // namespace minnow::jinja
