// minnow info -m MODEL [--json] [--max-items N]: header, metadata and tensor table of a GGUF file.
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "app/commands.h"
#include "common/args.h"
#include "common/error.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_parser.h"

namespace minnow {
namespace {

std::string type_label(const GgufValue& v) {
  if (v.type() != GgufValueType::ARRAY) return std::string(gguf_type_name(v.type()));
  return "arr[" + std::string(gguf_type_name(v.array_type())) + "," + std::to_string(v.array_size()) + "]";
}

std::string shape_of(const GgufTensorInfo& t) {
  std::string s = "[";
  for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[d]);
  return s + "]";
}

nlohmann::json value_json(const GgufValue& v) {
  switch (v.type()) {
    case GgufValueType::UINT8:
    case GgufValueType::UINT16:
    case GgufValueType::UINT32:
    case GgufValueType::UINT64: return v.u_;
    case GgufValueType::INT8:
    case GgufValueType::INT16:
    case GgufValueType::INT32:
    case GgufValueType::INT64: return static_cast<int64_t>(v.u_);
    case GgufValueType::FLOAT32:
    case GgufValueType::FLOAT64: return v.f_;  // NaN / inf become null
    case GgufValueType::BOOL: return v.u_ != 0;
    case GgufValueType::STRING: return std::string(v.s_);
    case GgufValueType::ARRAY: {
      nlohmann::json a = nlohmann::json::array();
      for (size_t i = 0; i < v.array_size(); ++i) a.push_back(value_json(v.at(i)));
      return a;
    }
  }
  return nullptr;
}

void print_json(const GgufFile& f) {
  nlohmann::json j;
  j["file"] = f.path();
  j["version"] = f.version();
  j["alignment"] = f.alignment();
  j["file_size"] = f.file_size();
  j["data_offset"] = f.data_offset();
  nlohmann::json md = nlohmann::json::array();
  for (auto& [k, v] : f.metadata()) {
    nlohmann::json e = {{"key", k}, {"type", gguf_type_name(v.type())}, {"value", value_json(v)}};
    if (v.type() == GgufValueType::ARRAY) e["elem_type"] = gguf_type_name(v.array_type());
    md.push_back(std::move(e));
  }
  j["metadata"] = std::move(md);
  nlohmann::json ts = nlohmann::json::array();
  uint64_t total_bytes = 0, total_elems = 0;
  for (auto& t : f.tensors()) {
    nlohmann::json shape = nlohmann::json::array();
    for (uint32_t d = 0; d < t.n_dims; ++d) shape.push_back(t.ne[d]);
    ts.push_back({{"name", t.name},
                  {"type", type_name(t.type)},
                  {"type_id", static_cast<uint32_t>(t.type)},
                  {"shape", shape},
                  {"offset", t.offset},
                  {"nbytes", t.nbytes}});
    total_bytes += t.nbytes;
    total_elems += static_cast<uint64_t>(t.n_elements());
  }
  j["tensors"] = std::move(ts);
  j["total_elements"] = total_elems;
  j["total_bytes"] = total_bytes;
  std::string out = j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::printf("%s\n", out.c_str());
}

void print_text(const GgufFile& f, size_t max_items) {
  std::printf("file:        %s\n", f.path().c_str());
  std::printf("version:     %u\n", f.version());
  std::printf("alignment:   %zu\n", f.alignment());
  std::printf("file size:   %zu bytes\n", f.file_size());
  std::printf("data offset: %zu\n", f.data_offset());
  std::printf("\nmetadata: %zu keys\n", f.metadata().size());
  for (auto& [k, v] : f.metadata())
    std::printf("  %-44s %-14s %s\n", printable(k, 200).c_str(), type_label(v).c_str(), v.display(max_items).c_str());

  std::printf("\ntensors: %zu\n", f.tensors().size());
  if (!f.tensors().empty())
    std::printf("  %5s  %-36s %-6s %-24s %14s %14s\n", "#", "name", "type", "shape", "offset", "bytes");
  uint64_t total_bytes = 0, total_elems = 0;
  size_t i = 0;
  for (auto& t : f.tensors()) {
    std::printf("  %5zu  %-36s %-6s %-24s %14" PRIu64 " %14zu\n", i++, printable(t.name, 200).c_str(),
                std::string(type_name(t.type)).c_str(), shape_of(t).c_str(), t.offset, t.nbytes);
    total_bytes += t.nbytes;
    total_elems += static_cast<uint64_t>(t.n_elements());
  }
  std::printf("\ntotal: %zu tensors, %" PRIu64 " elements, %" PRIu64 " bytes (%.2f MiB)\n", f.tensors().size(),
              total_elems, total_bytes, static_cast<double>(total_bytes) / (1024.0 * 1024.0));
}

int cmd_info(int argc, char** argv) {
  std::string model;
  bool json = false;
  int64_t max_items = 8;
  std::vector<std::string> positional;
  ArgParser p("info");
  p.add_string({"-m", "--model"}, &model, "GGUF file to describe");
  p.add_flag({"--json"}, &json, "print everything (full arrays) as one JSON object");
  p.add_int({"--max-items"}, &max_items, "array items shown per metadata value in text mode (default 8)");
  p.allow_positional(&positional, "MODEL (same as -m)");
  if (!p.parse(argc, argv, 1)) return 0;
  if (model.empty() && positional.size() == 1) model = positional[0];
  if (model.empty() || positional.size() > 1) throw Error("info: exactly one model is required (-m MODEL)");
  if (max_items < 0) throw Error("info: --max-items must be >= 0");
  auto f = GgufFile::open(model);
  if (json)
    print_json(*f);
  else
    print_text(*f, static_cast<size_t>(max_items));
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace
}  // namespace minnow

MINNOW_COMMAND("info", "print a GGUF file's header, metadata and tensor table", minnow::cmd_info);
