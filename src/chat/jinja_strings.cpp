#include "chat/jinja_strings.h"

#include <algorithm>

#include "chat/jinja_budget.h"
#include "chat/jinja_utf8.h"
#include "common/error.h"

namespace minnow::jinja {

std::string py_strip(const std::string& s, const std::string* chars, bool left, bool right) {
  std::u32string cs = utf8_decode(s);
  std::u32string set = chars ? utf8_decode(*chars) : std::u32string();
  auto strip_it = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : py_isspace(c); };
  size_t b = 0, e = cs.size();
  if (left)
    while (b < e && strip_it(cs[b])) ++b;
  if (right)
    while (e > b && strip_it(cs[e - 1])) --e;
  return utf8_encode(std::u32string_view(cs).substr(b, e - b));
}

std::vector<std::string> py_split(const std::string& s, const std::string* sep, int64_t maxsplit, bool right) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) throw Error("empty separator");
    if (!right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        size_t p = s.find(*sep, start);
        if (p == std::string::npos) break;
        out.push_back(s.substr(start, p - start));
        budget_items_size(out.size());
        start = p + sep->size();
      }
      out.push_back(s.substr(start));
    } else {
      size_t end = s.size();
      while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        if (end < sep->size()) break;
        size_t p = s.rfind(*sep, end - sep->size());
        if (p == std::string::npos) break;
        out.push_back(s.substr(p + sep->size(), end - p - sep->size()));
        budget_items_size(out.size());
        end = p;
      }
      out.push_back(s.substr(0, end));
      std::reverse(out.begin(), out.end());
    }
    return out;
  }
  std::u32string cs = utf8_decode(s);
  size_t n = cs.size();
  if (!right) {
    size_t i = 0;
    while (true) {
      while (i < n && py_isspace(cs[i])) ++i;
      if (i >= n) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        out.push_back(utf8_encode(std::u32string_view(cs).substr(i)));
        break;
      }
      size_t j = i;
      while (j < n && !py_isspace(cs[j])) ++j;
      out.push_back(utf8_encode(std::u32string_view(cs).substr(i, j - i)));
      budget_items_size(out.size());
      i = j;
    }
  } else {
    size_t i = n;
    while (true) {
      while (i > 0 && py_isspace(cs[i - 1])) --i;
      if (i == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
        out.push_back(utf8_encode(std::u32string_view(cs).substr(0, i)));
        break;
      }
      size_t j = i;
      while (j > 0 && !py_isspace(cs[j - 1])) --j;
      out.push_back(utf8_encode(std::u32string_view(cs).substr(j, i - j)));
      budget_items_size(out.size());
      i = j;
    }
    std::reverse(out.begin(), out.end());
  }
  return out;
}

static bool is_line_break(char32_t c) {
  return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
         c == 0x2028 || c == 0x2029;
}

std::vector<std::string> py_splitlines(const std::string& s, bool keepends) {
  std::u32string cs = utf8_decode(s);
  std::vector<std::string> out;
  size_t i = 0, n = cs.size();
  while (i < n) {
    size_t j = i;
    while (j < n && !is_line_break(cs[j])) ++j;
    size_t eol = j;
    if (j < n) {
      if (cs[j] == '\r' && j + 1 < n && cs[j + 1] == '\n') j += 2;
      else j += 1;
    }
    out.push_back(utf8_encode(std::u32string_view(cs).substr(i, (keepends ? j : eol) - i)));
    budget_items_size(out.size());
    i = j;
  }
  return out;
}

// Python's SpecialCasing: one code point that maps to several (utf8proc maps one to one).
static bool special_case(char32_t c, char mode, std::string& out) {
  struct Sp {
    char32_t c;
    const char* upper;
    const char* title;
  };
  static const Sp kTable[] = {
      {0x00DF, "SS", "Ss"},   {0xFB00, "FF", "Ff"},   {0xFB01, "FI", "Fi"},     {0xFB02, "FL", "Fl"},
      {0xFB03, "FFI", "Ffi"}, {0xFB04, "FFL", "Ffl"}, {0xFB05, "ST", "St"},     {0xFB06, "ST", "St"},
      {0x0149, "\xCA\xBCN", "\xCA\xBCN"},
  };
  if (mode == 'l') {
    if (c == 0x0130) {
      out += "i\xCC\x87";
      return true;
    }
    return false;
  }
  for (const Sp& sp : kTable)
    if (sp.c == c) {
      out += mode == 'u' ? sp.upper : sp.title;
      return true;
    }
  return false;
}

static void put_upper(std::string& out, char32_t c) {
  if (!special_case(c, 'u', out)) utf8_append(out, py_upper(c));
}
static void put_title(std::string& out, char32_t c) {
  if (!special_case(c, 't', out)) utf8_append(out, py_title(c));
}
static void put_lower(std::string& out, char32_t c) {
  if (!special_case(c, 'l', out)) utf8_append(out, py_lower(c));
}

std::string py_case(const std::string& s, const std::string& name) {
  std::u32string cs = utf8_decode(s);
  std::string out;
  out.reserve(s.size());
  if (name == "lower") {
    for (char32_t c : cs) put_lower(out, c);
  } else if (name == "upper") {
    for (char32_t c : cs) put_upper(out, c);
  } else if (name == "swapcase") {
    for (char32_t c : cs) {
      if (py_lower(c) != c) put_lower(out, c);
      else put_upper(out, c);
    }
  } else if (name == "capitalize") {
    for (size_t k = 0; k < cs.size(); ++k) {
      if (k == 0) put_title(out, cs[k]);
      else put_lower(out, cs[k]);
    }
  } else {  // title
    bool prev_cased = false;
    for (char32_t c : cs) {
      if (prev_cased) put_lower(out, c);
      else put_title(out, c);
      prev_cased = py_iscased(c);
    }
  }
  return out;
}

std::string py_replace(const std::string& s, const std::string& old_s, const std::string& new_s, int64_t count) {
  std::string out;
  if (old_s.empty()) {
    std::u32string cs = utf8_decode(s);
    int64_t done = 0;
    for (size_t k = 0; k <= cs.size(); ++k) {
      if (count < 0 || done < count) {
        out += new_s;
        budget_string_size(out.size());
        ++done;
      }
      if (k < cs.size()) utf8_append(out, cs[k]);
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t p = s.find(old_s, start);
    if (p == std::string::npos) break;
    out.append(s, start, p - start);
    out += new_s;
    budget_string_size(out.size());
    start = p + old_s.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

std::string py_format(const std::string& fmt, const CallArgs& args) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      throw Error("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    size_t close = fmt.find('}', i);
    if (close == std::string::npos) throw Error("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    bool use_repr = false;
    size_t bang = field.find('!');
    size_t colon = field.find(':');
    if (colon != std::string::npos && !field.substr(colon + 1).empty())
      throw Error("unsupported construct: format spec '" + field.substr(colon + 1) + "' in str.format");
    if (bang != std::string::npos) {
      use_repr = field.substr(bang + 1, 1) == "r";
      field = field.substr(0, bang);
    } else if (colon != std::string::npos) {
      field = field.substr(0, colon);
    }
    const Value* v = nullptr;
    if (field.empty()) {
      if (auto_idx >= args.pos.size()) throw Error("Replacement index " + std::to_string(auto_idx) + " out of range");
      v = &args.pos[auto_idx++];
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t k = field.size() > 9 ? SIZE_MAX : std::stoul(field);
      if (k >= args.pos.size()) throw Error("Replacement index " + field + " out of range");
      v = &args.pos[k];
    } else {
      for (auto& kv : args.kw)
        if (kv.first == field) v = &kv.second;
      if (!v) throw Error("KeyError: '" + field + "'");
    }
    out += use_repr ? v->repr() : v->str();
    budget_string_size(out.size());
  }
  return out;
}

std::string py_percent_format(const std::string& fmt, const Value& args) {
  const bool is_tuple = args.is_list() && args.list->tuple;
  const bool is_map = args.is_dict() && !args.is_namespace();
  std::vector<Value> pos = is_tuple ? args.list->items : std::vector<Value>{args};
  size_t next = 0;
  bool used_map = false;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out.push_back(fmt[i]);
      continue;
    }
    if (++i >= fmt.size()) throw Error("incomplete format");
    const Value* v = nullptr;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) throw Error("incomplete format key");
      if (!is_map) throw Error("format requires a mapping");
      v = args.dict->find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!v) throw Error("KeyError: '" + fmt.substr(i + 1, close - i - 1) + "'");
      used_map = true;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos) flags.push_back(fmt[i++]);
    std::string width, prec;
    while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') width.push_back(fmt[i++]);
    bool has_prec = false;
    if (i < fmt.size() && fmt[i] == '.') {
      has_prec = true;
      ++i;
      while (i < fmt.size() && fmt[i] >= '0' && fmt[i] <= '9') prec.push_back(fmt[i++]);
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) throw Error("incomplete format");
    if (width.size() > 9 || prec.size() > 9) throw Error("format width or precision too large");
    const bool text_conv = fmt[i] == 's' || fmt[i] == 'r' || fmt[i] == 'a';
    if (!text_conv && ((!width.empty() && std::stoul(width) > 500) || (!prec.empty() && std::stoul(prec) > 500)))
      throw Error("format width or precision too large for a number (over 500)");
    char conv = fmt[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (!v) {
      if (is_map && !is_tuple) {
        v = &args;  // '%s' % {'a': 1} formats the dict itself
        used_map = true;
      } else {
        if (next >= pos.size()) throw Error("not enough arguments for format string");
        v = &pos[next++];
      }
    }
    std::string cspec = "%" + flags + width + (has_prec ? "." + prec : "");
    std::string piece;
    char buf[512];
    switch (conv) {
      case 's': case 'r': case 'a': {
        piece = conv == 's' ? v->str() : v->repr();
        if (has_prec) {
          std::u32string cs = utf8_decode(piece);
          size_t p = prec.empty() ? 0 : std::stoul(prec);
          if (cs.size() > p) piece = utf8_encode(std::u32string_view(cs).substr(0, p));
        }
        size_t w = width.empty() ? 0 : std::stoul(width);
        budget_string_size(w);
        size_t len = utf8_length(piece);
        if (len < w) {
          std::string pad(w - len, ' ');
          piece = flags.find('-') != std::string::npos ? piece + pad : pad + piece;
        }
        break;
      }
      case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': case 'c': {
        if (conv == 'c' && v->is_string()) {
          if (utf8_length(v->s) != 1) throw Error("%c requires int or char");
          piece = v->s;
          break;
        }
        if (!v->is_number()) throw Error(std::string("%") + conv + " format: a real number is required, not " + v->type_name());
        long long n = v->kind == Value::Kind::Float ? static_cast<long long>(v->f) : static_cast<long long>(v->as_int());
        if (conv == 'c') {
          utf8_append(piece, static_cast<char32_t>(n));
          break;
        }
        std::string spec = cspec + "ll" + (conv == 'i' || conv == 'u' ? 'd' : conv);
        std::snprintf(buf, sizeof buf, spec.c_str(), n);
        piece = buf;
        break;
      }
      case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': {
        if (!v->is_number()) throw Error(std::string("%") + conv + " format: a real number is required, not " + v->type_name());
        std::string spec = cspec + conv;
        std::snprintf(buf, sizeof buf, spec.c_str(), v->as_double());
        piece = buf;
        break;
      }
      default:
        throw Error(std::string("unsupported format character '") + conv + "'");
    }
    out += piece;
    budget_string_size(out.size());
  }
  // Python skips this check for arguments with __getitem__ (lists, dicts, jinja2's Undefined).
  const bool subscriptable = !is_tuple && (args.is_list() || args.is_dict() || args.is_undefined());
  if (!used_map && next < pos.size() && !subscriptable)
    throw Error("not all arguments converted during string formatting");
  return out;
}

bool py_is(const std::string& s, const std::string& name) {
  std::u32string cs = utf8_decode(s);
  if (cs.empty()) return false;
  if (name == "isupper" || name == "islower") {
    bool any = false;
    for (char32_t c : cs) {
      if (!py_iscased(c)) continue;
      any = true;
      bool up = py_lower(c) != c;
      if ((name == "isupper") != up) return false;
    }
    return any;
  }
  for (char32_t c : cs) {
    bool ok;
    if (name == "isdigit") ok = c >= '0' && c <= '9';
    else if (name == "isspace") ok = py_isspace(c);
    else if (name == "isalpha") ok = py_isalnum(c) && !(c >= '0' && c <= '9');
    else ok = py_isalnum(c);
    if (!ok) return false;
  }
  return true;
}

}  // namespace minnow::jinja
