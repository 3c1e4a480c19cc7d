// minnow quantize IN.gguf OUT.gguf TYPE [-t THREADS] [--pure] [--stats]
//   Re-encodes every weight matrix of IN as llama-quantize would for TYPE (Q4_K_M, Q8_0, ...); metadata is
//   copied, general.file_type / general.quantization_version are set. Inputs of any supported type are
//   dequantized first.
// minnow quantize --eval IN.gguf TYPE [TYPE...] [-t THREADS]
//   Writes nothing: for each pure type, the round-trip RMSE over all 2-D weights whose rows fit the type.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "app/commands.h"
#include "common/args.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "quant/convert.h"
#include "quant/quant_mix.h"

namespace minnow {
namespace {

std::string shape_of(const GgufTensorInfo& t) {
  std::string s;
  for (uint32_t d = 0; d < t.n_dims; ++d) s += (d ? " x " : "") + std::to_string(t.ne[d]);
  return s;
}

MixModelInfo model_info(const GgufFile& f) {
  const std::string arch(f.get_string("general.architecture").value_or("llama"));
  MixModelInfo m;
  m.n_layer = f.get_int(arch + ".block_count").value_or(0);
  m.n_head = f.get_int(arch + ".attention.head_count").value_or(1);
  m.n_head_kv = f.get_int(arch + ".attention.head_count_kv").value_or(m.n_head);
  m.has_output = f.find_tensor("output.weight") != nullptr;
  if (m.n_layer <= 0) {  // count blocks from tensor names
    for (auto& t : f.tensors())
      m.n_layer = std::max<int64_t>(m.n_layer, layer_of(t.name) + 1);
  }
  return m;
}

struct ErrorSum {
  double se = 0, ss = 0;  // squared error, squared signal
  int64_t n = 0;
  void add(const float* a, const float* b, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      const double d = static_cast<double>(a[i]) - b[i];
      se += d * d;
      ss += static_cast<double>(a[i]) * a[i];
    }
    n += count;
  }
  double rmse() const { return n ? std::sqrt(se / static_cast<double>(n)) : 0.0; }
  double rel() const { return ss > 0 ? std::sqrt(se / ss) : 0.0; }
};

int run_eval(const std::vector<std::string>& pos, ThreadPool& pool) {
  if (pos.size() < 2) throw Error("--eval needs IN.gguf and at least one TYPE");
  auto in = GgufFile::open(pos[0]);
  std::printf("%-8s %10s %12s %12s %8s\n", "type", "tensors", "elements", "rmse", "rel_rmse");
  for (size_t k = 1; k < pos.size(); ++k) {
    const QuantTarget target = parse_quant_target(pos[k]);
    ErrorSum err;
    int tensors = 0;
    for (const auto& t : in->tensors()) {
      if (!is_quantizable(t.name, t.n_dims) || t.ne[0] % traits(target.default_type).block_size != 0) continue;
      const int64_t rows = t.n_elements() / t.ne[0];
      auto orig = dequantize_tensor(t.type, t.data, t.ne[0], rows, pool);
      auto q = quantize_tensor(orig.data(), target.default_type, t.ne[0], rows, pool);
      auto back = dequantize_tensor(target.default_type, q.data(), t.ne[0], rows, pool);
      err.add(orig.data(), back.data(), static_cast<int64_t>(orig.size()));
      ++tensors;
    }
    std::printf("%-8s %10d %12lld %12.6g %8.5f\n", std::string(type_name(target.default_type)).c_str(), tensors,
                static_cast<long long>(err.n), err.rmse(), err.rel());
  }
  return 0;
}

int run_quantize(int argc, char** argv) {
  ArgParser ap("quantize");
  std::vector<std::string> pos;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bool pure = false, stats = false, eval = false;
  ap.add_int({"-t", "--threads"}, &threads, "worker threads (default: all cores)");
  ap.add_flag({"--pure"}, &pure, "every weight matrix gets TYPE itself (no llama.cpp mix rules)");
  ap.add_flag({"--stats"}, &stats, "print each re-encoded tensor's round-trip RMSE");
  ap.add_flag({"--eval"}, &eval, "IN TYPE...: print round-trip RMSE per pure type, write nothing");
  ap.allow_positional(&pos, "IN.gguf OUT.gguf TYPE   (TYPE: " + quant_target_names() + ")");
  if (!ap.parse(argc, argv, 1)) return 0;
  if (threads < 1 || threads > 1024) throw Error("-t must be between 1 and 1024");
  ThreadPool pool(threads);
  if (eval) return run_eval(pos, pool);
  if (pos.size() != 3) throw Error("usage: minnow quantize IN.gguf OUT.gguf TYPE [-t THREADS]");
  const QuantTarget target = parse_quant_target(pos[2]);
  const auto t0 = std::chrono::steady_clock::now();
  auto in = GgufFile::open(pos[0]);
  MixModelInfo info = model_info(*in);
  MixPlanner planner(pure ? QuantTarget{target.name, FileType::ALL_F32, target.default_type} : target, info);

  GgufWriter w(in->alignment());
  for (const auto& [key, value] : in->metadata()) w.copy_value(key, value);
  w.set_u32("general.quantization_version", 2);
  w.set_u32("general.file_type", static_cast<uint32_t>(target.ftype));

  // llama-quantize's order: tensors outside the blocks first, then by layer; by name within each.
  std::vector<const GgufTensorInfo*> order;
  for (const auto& t : in->tensors()) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const GgufTensorInfo* a, const GgufTensorInfo* b) {
    const int64_t la = layer_of(a->name), lb = layer_of(b->name);
    return la != lb ? la < lb : a->name < b->name;
  });
  size_t bytes_in = 0, bytes_out = 0;
  ErrorSum total;
  for (const GgufTensorInfo* tp : order) {
    const GgufTensorInfo& t = *tp;
    const GgmlType type = planner.choose(t.name, t.n_dims, t.ne[0], t.type);
    bytes_in += t.nbytes;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    if (type == t.type) {
      w.add_tensor(t.name, t.type, ne, t.data, t.nbytes);
      bytes_out += t.nbytes;
      std::printf("%-32s %-20s %-6s (kept)\n", t.name.c_str(), shape_of(t).c_str(),
                  std::string(type_name(t.type)).c_str());
      continue;
    }
    const int64_t rows = t.n_elements() / t.ne[0];
    std::vector<uint8_t> out;
    std::string note;
    if (stats) {
      auto orig = dequantize_tensor(t.type, t.data, t.ne[0], rows, pool);
      out = quantize_tensor(orig.data(), type, t.ne[0], rows, pool);
      auto back = dequantize_tensor(type, out.data(), t.ne[0], rows, pool);
      ErrorSum e;
      e.add(orig.data(), back.data(), static_cast<int64_t>(orig.size()));
      total.add(orig.data(), back.data(), static_cast<int64_t>(orig.size()));
      char buf[96];
      std::snprintf(buf, sizeof buf, " rmse %.4g rel %.4f", e.rmse(), e.rel());
      note = buf;
    } else {
      out = convert_tensor(t.type, t.data, type, t.ne[0], rows, pool);
    }
    w.add_tensor(t.name, type, ne, out.data(), out.size());
    bytes_out += out.size();
    std::printf("%-32s %-20s %-6s -> %-6s%s\n", t.name.c_str(), shape_of(t).c_str(),
                std::string(type_name(t.type)).c_str(), std::string(type_name(type)).c_str(), note.c_str());
  }
  w.write(pos[1]);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %.2f MiB -> %.2f MiB as %s in %.2f s (%d tensors needed a fallback type)\n", pos[1].c_str(),
              static_cast<double>(bytes_in) / 1048576.0, static_cast<double>(bytes_out) / 1048576.0,
              target.name.c_str(), secs, planner.fallbacks());
  if (stats) std::printf("overall: rmse %.6g rel %.5f\n", total.rmse(), total.rel());
  return 0;
}

MINNOW_COMMAND("quantize", "re-encode a model's weights (Q4_K_M, Q8_0, ...), like llama-quantize", run_quantize);

}  // namespace
}  // namespace minnow
