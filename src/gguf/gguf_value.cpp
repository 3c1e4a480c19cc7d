// GgufValue: typed access to one metadata value, and its short rendering for `minnow info`.
#include <cinttypes>
#include <cstdio>
#include <limits>

#include "common/error.h"
#include "gguf/gguf_file.h"

namespace minnow {

std::string_view gguf_type_name(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8: return "u8";
    case GgufValueType::INT8: return "i8";
    case GgufValueType::UINT16: return "u16";
    case GgufValueType::INT16: return "i16";
    case GgufValueType::UINT32: return "u32";
    case GgufValueType::INT32: return "i32";
    case GgufValueType::FLOAT32: return "f32";
    case GgufValueType::BOOL: return "bool";
    case GgufValueType::STRING: return "str";
    case GgufValueType::ARRAY: return "arr";
    case GgufValueType::UINT64: return "u64";
    case GgufValueType::INT64: return "i64";
    case GgufValueType::FLOAT64: return "f64";
  }
  return "?";
}

size_t gguf_type_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::BOOL: return 1;
    case GgufValueType::UINT16:
    case GgufValueType::INT16: return 2;
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::FLOAT32: return 4;
    case GgufValueType::UINT64:
    case GgufValueType::INT64:
    case GgufValueType::FLOAT64: return 8;
    case GgufValueType::STRING:
    case GgufValueType::ARRAY: return 0;
  }
  return 0;
}

static std::string type_mismatch(const char* want, GgufValueType got) {
  return std::string("metadata value is ") + std::string(gguf_type_name(got)) + ", expected " + want;
}

bool GgufValue::is_integer() const {
  switch (type_) {
    case GgufValueType::UINT8:
    case GgufValueType::INT8:
    case GgufValueType::UINT16:
    case GgufValueType::INT16:
    case GgufValueType::UINT32:
    case GgufValueType::INT32:
    case GgufValueType::UINT64:
    case GgufValueType::INT64: return true;
    default: return false;
  }
}

bool GgufValue::is_float() const { return type_ == GgufValueType::FLOAT32 || type_ == GgufValueType::FLOAT64; }

int64_t GgufValue::as_int() const {
  if (!is_integer()) throw Error(type_mismatch("an integer", type_));
  if (type_ == GgufValueType::UINT64 && u_ > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    throw Error("metadata value " + std::to_string(u_) + " does not fit in int64");
  return static_cast<int64_t>(u_);
}

double GgufValue::as_float() const {
  if (is_float()) return f_;
  if (type_ == GgufValueType::UINT64) return static_cast<double>(u_);
  if (is_integer()) return static_cast<double>(static_cast<int64_t>(u_));
  throw Error(type_mismatch("a number", type_));
}

bool GgufValue::as_bool() const {
  if (type_ != GgufValueType::BOOL) throw Error(type_mismatch("bool", type_));
  return u_ != 0;
}

std::string_view GgufValue::as_string() const {
  if (type_ != GgufValueType::STRING) throw Error(type_mismatch("str", type_));
  return s_;
}

GgufValueType GgufValue::array_type() const {
  if (type_ != GgufValueType::ARRAY) throw Error(type_mismatch("arr", type_));
  return elem_type_;
}

size_t GgufValue::array_size() const {
  if (type_ != GgufValueType::ARRAY) throw Error(type_mismatch("arr", type_));
  return items_.size();
}

const GgufValue& GgufValue::at(size_t i) const {
  if (type_ != GgufValueType::ARRAY) throw Error(type_mismatch("arr", type_));
  if (i >= items_.size())
    throw Error("array index " + std::to_string(i) + " out of range (size " + std::to_string(items_.size()) + ")");
  return items_[i];
}

// Quotes a string for display on one line: escapes control bytes, quotes and backslashes; cuts long text.
static std::string quote(std::string_view s, size_t max_chars) {
  std::string out = "\"";
  size_t n = 0;
  for (char c : s) {
    if (n++ >= max_chars) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

std::string GgufValue::display(size_t max_items) const {
  char buf[64];
  switch (type_) {
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64: std::snprintf(buf, sizeof buf, "%" PRIu64, u_); return buf;
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64: std::snprintf(buf, sizeof buf, "%" PRId64, static_cast<int64_t>(u_)); return buf;
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: std::snprintf(buf, sizeof buf, "%.9g", f_); return buf;
    case GgufValueType::BOOL: return u_ ? "true" : "false";
    case GgufValueType::STRING: return quote(s_, 200);
    case GgufValueType::ARRAY: {
      std::string out = "[";
      size_t shown = items_.size() < max_items ? items_.size() : max_items;
      for (size_t i = 0; i < shown; ++i) {
        if (i) out += ", ";
        out += items_[i].type_ == GgufValueType::STRING ? quote(items_[i].s_, 40) : items_[i].display(max_items);
      }
      if (shown < items_.size()) out += ", ... (" + std::to_string(items_.size()) + " items)";
      out += "]";
      return out;
    }
  }
  return "?";
}

}  // namespace minnow
