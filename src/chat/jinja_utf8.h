#pragma once
// UTF-8 helpers for the Jinja engine: Python strings index, slice, strip and change case by code point.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace minnow::jinja {

std::u32string utf8_decode(std::string_view s);  // invalid bytes decode as U+FFFD
void utf8_append(std::string& out, char32_t c);
std::string utf8_encode(std::u32string_view s);
size_t utf8_length(std::string_view s);  // code points
bool py_isspace(char32_t c);             // Python str.isspace for one code point
char32_t py_lower(char32_t c);
char32_t py_upper(char32_t c);
char32_t py_title(char32_t c);
bool py_iscased(char32_t c);
bool py_isprintable(char32_t c);  // Python str.isprintable (repr escapes the rest)
bool py_isalnum(char32_t c);

}  // namespace minnow::jinja
