#include "common/args.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "common/error.h"

namespace minnow {

int64_t parse_int(const std::string& flag, const std::string& s) {
  if (s.empty()) throw Error("flag " + flag + " expects an integer, got an empty value");
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0')
    throw Error("flag " + flag + " expects an integer, got '" + s + "'");
  return v;
}

double parse_float(const std::string& flag, const std::string& s) {
  if (s.empty()) throw Error("flag " + flag + " expects a number, got an empty value");
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end == s.c_str() || *end != '\0' || !std::isfinite(v))
    throw Error("flag " + flag + " expects a number, got '" + s + "'");
  return v;
}

namespace {
std::string fmt_num(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}
}  // namespace

void ArgParser::add_string(std::vector<std::string> names, std::string* dst, std::string help) {
  opts_.push_back({std::move(names), std::move(help), true, [dst](const std::string& v) { *dst = v; }});
}
void ArgParser::add_int(std::vector<std::string> names, int64_t* dst, std::string help) {
  std::string n0 = names[0];
  opts_.push_back({std::move(names), std::move(help), true,
                   [dst, n0](const std::string& v) { *dst = parse_int(n0, v); }});
}
void ArgParser::add_int(std::vector<std::string> names, int* dst, std::string help) {
  std::string n0 = names[0];
  opts_.push_back({std::move(names), std::move(help), true, [dst, n0](const std::string& v) {
                     int64_t x = parse_int(n0, v);
                     if (x < INT32_MIN || x > INT32_MAX) throw Error("flag " + n0 + ": value out of range");
                     *dst = static_cast<int>(x);
                   }});
}
void ArgParser::add_float(std::vector<std::string> names, double* dst, std::string help) {
  std::string n0 = names[0];
  opts_.push_back({std::move(names), std::move(help), true,
                   [dst, n0](const std::string& v) { *dst = parse_float(n0, v); }});
}
void ArgParser::add_float(std::vector<std::string> names, double* dst, std::string help, double lo, double hi) {
  std::string n0 = names[0];
  opts_.push_back({std::move(names), std::move(help), true, [dst, n0, lo, hi](const std::string& v) {
                     const double x = parse_float(n0, v);
                     if (!(x >= lo && x <= hi))
                       throw Error("flag " + n0 + " must be between " + fmt_num(lo) + " and " + fmt_num(hi) + ", got '" +
                                   v + "'");
                     *dst = x;
                   }});
}
void ArgParser::add_flag(std::vector<std::string> names, bool* dst, std::string help) {
  opts_.push_back({std::move(names), std::move(help), false, [dst](const std::string&) { *dst = true; }});
}
void ArgParser::allow_positional(std::vector<std::string>* dst, std::string help) {
  positional_ = dst;
  positional_help_ = std::move(help);
}

ArgParser::Opt* ArgParser::lookup(const std::string& name) {
  for (auto& o : opts_)
    for (auto& n : o.names)
      if (n == name) return &o;
  return nullptr;
}

bool ArgParser::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.'))) {
      std::string name = a, value;
      bool has_inline = false;
      if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_inline = true;
      }
      Opt* o = lookup(name);
      if (!o) throw Error("unknown flag '" + name + "' for '" + command_ + "' (see --help)");
      if (o->takes_value) {
        if (!has_inline) {
          if (i + 1 >= argc) throw Error("flag " + name + " needs a value");
          value = argv[++i];
        }
      } else if (has_inline) {
        throw Error("flag " + name + " takes no value");
      }
      o->set(value);
      o->seen = true;
    } else {
      if (!positional_) throw Error("unexpected argument '" + a + "' for '" + command_ + "'");
      positional_->push_back(a);
    }
  }
  return true;
}

bool ArgParser::was_set(const std::string& name) const {
  for (auto& o : opts_)
    for (auto& n : o.names)
      if (n == name) return o.seen;
  return false;
}

std::string ArgParser::usage() const {
  std::string u = "usage: minnow " + command_ + " [options]";
  if (positional_) u += " " + positional_help_;
  u += "\n";
  for (auto& o : opts_) {
    std::string names;
    for (auto& n : o.names) names += (names.empty() ? "" : ", ") + n;
    if (o.takes_value) names += " V";
    u += "  " + names + std::string(names.size() < 28 ? 28 - names.size() : 1, ' ') + o.help + "\n";
  }
  return u;
}

}  // namespace minnow
