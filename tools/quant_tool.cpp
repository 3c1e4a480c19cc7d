// Test helper for the reference formats: raw block files in, raw f32 out (and back), plus tensors of a GGUF.
//   quant_tool dequant TYPE IN.bin OUT.f32         decode every whole block of IN
//   quant_tool quant TYPE IN.f32 OUT.bin           encode IN (element count a multiple of the block size)
//   quant_tool dot TYPE W.bin X.f32                print dot_row_ref(W, X) (one row)
//   quant_tool tensor MODEL.gguf NAME OUT.f32      decode one tensor of a model
// TYPE is ggml's name (q4_K, f16, ...). Errors print "error: ..." and exit 1.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "quant/ggml_type.h"
#include "quant/quant_ref.h"

using namespace minnow;

namespace {

GgmlType parse_type(const std::string& s) {
  for (uint32_t id = 0; id < 64; ++id) {
    auto tr = type_traits(id);
    if (tr && s == tr->name) return static_cast<GgmlType>(id);
  }
  throw Error("unknown type name '" + s + "'");
}

std::vector<char> read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot open " + path);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}

void write_all(const std::string& path, const void* p, size_t n) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw Error("cannot write " + path);
  f.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  if (!f) throw Error("write failed: " + path);
}

int run(int argc, char** argv) {
  if (argc < 2) throw Error("usage: quant_tool dequant|quant|dot|tensor ...");
  const std::string cmd = argv[1];
  if (cmd == "dequant" && argc == 5) {
    const GgmlType t = parse_type(argv[2]);
    const TypeTraits tr = traits(t);
    auto in = read_all(argv[3]);
    const int64_t nb = static_cast<int64_t>(in.size() / tr.type_size);
    std::vector<float> out(static_cast<size_t>(nb * tr.block_size));
    dequantize_row_ref(t, in.data(), out.data(), nb * tr.block_size);
    write_all(argv[4], out.data(), out.size() * 4);
    return 0;
  }
  if (cmd == "quant" && argc == 5) {
    const GgmlType t = parse_type(argv[2]);
    auto in = read_all(argv[3]);
    const int64_t n = static_cast<int64_t>(in.size() / 4);
    std::vector<float> x(static_cast<size_t>(n));
    std::memcpy(x.data(), in.data(), x.size() * 4);
    if (n % traits(t).block_size) throw Error("element count is not a multiple of the block size");
    std::vector<uint8_t> out(row_bytes(t, n));
    quantize_row_ref(t, x.data(), out.data(), n);
    write_all(argv[4], out.data(), out.size());
    return 0;
  }
  if (cmd == "dot" && argc == 5) {
    const GgmlType t = parse_type(argv[2]);
    auto w = read_all(argv[3]);
    auto xb = read_all(argv[4]);
    const int64_t n = static_cast<int64_t>(xb.size() / 4);
    if (row_bytes(t, n) != w.size()) throw Error("weight and input sizes disagree");
    std::vector<float> x(static_cast<size_t>(n));
    std::memcpy(x.data(), xb.data(), x.size() * 4);
    std::printf("%.17g\n", dot_row_ref(t, w.data(), x.data(), n));
    return 0;
  }
  if (cmd == "tensor" && argc == 5) {
    auto file = GgufFile::open(argv[2]);
    const GgufTensorInfo* ti = file->find_tensor(argv[3]);
    if (!ti) throw Error(std::string("no tensor named ") + argv[3]);
    std::vector<float> out(static_cast<size_t>(ti->n_elements()));
    const int64_t rows = ti->n_elements() / ti->ne[0];
    const size_t rb = row_bytes(ti->type, ti->ne[0]);
    for (int64_t r = 0; r < rows; ++r)
      dequantize_row_ref(ti->type, ti->data + static_cast<size_t>(r) * rb, out.data() + r * ti->ne[0], ti->ne[0]);
    write_all(argv[4], out.data(), out.size() * 4);
    return 0;
  }
  throw Error("bad arguments (see the comment at the top of tools/quant_tool.cpp)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
