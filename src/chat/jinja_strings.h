#pragma once
// Python str algorithms (by code point) used by the Jinja string methods and filters.
#include <string>
#include <vector>

#include "chat/jinja_value.h"

namespace minnow::jinja {

// chars == nullptr: strip Python whitespace; else strip any code point of *chars.
std::string py_strip(const std::string& s, const std::string* chars, bool left, bool right);
// str.split / str.rsplit; sep == nullptr splits on whitespace runs. Throws Error on an empty separator.
std::vector<std::string> py_split(const std::string& s, const std::string* sep, int64_t maxsplit, bool right);
std::vector<std::string> py_splitlines(const std::string& s, bool keepends);
// name: lower, upper, title, capitalize, swapcase.
std::string py_case(const std::string& s, const std::string& name);
std::string py_replace(const std::string& s, const std::string& old_s, const std::string& new_s, int64_t count);
std::string py_format(const std::string& fmt, const CallArgs& args);  // str.format, no format specs
// printf-style `fmt % args`: args is a tuple (positional), a dict (%(name)s) or one value.
std::string py_percent_format(const std::string& fmt, const Value& args);
bool py_is(const std::string& s, const std::string& name);          // isdigit, isalpha, isspace, ...

}  // namespace minnow::jinja
