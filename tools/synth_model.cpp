// synth_model: writes a GGUF of any supported architecture with random weights and a real tokenizer, quantized
// like llama-quantize would (e.g. Q4_K_M), for speed tests, llama.cpp cross-checks at full model sizes, and
// the whole-model tests (tiny-* presets). Each preset writes exactly the keys and tensors llama.cpp expects
// for its architecture (phi3: fused attn_qkv and gate+up; qwen2: Q/K/V biases; qwen3/gemma3: Q/K norms, ...).
//   synth_model --preset NAME --vocab VOCAB.gguf --type Q4_K_M -o OUT.gguf
//               [--seed S] [--layers N] [-t THREADS] [--llama3-rope] [--longrope] [--weight-std X] [--random-norms]
// --longrope (phi3 presets) adds rope_factors_short/long.weight (Phi-3 128k's LongRoPE layout: short factors
// up to rope.scaling.original_context_length = n_ctx / 2, long ones beyond; rope.scaling.attn_factor).
// --llama3-rope (llama-3.2-1b, tiny-llama) adds rope_freqs.weight, the llama3 RoPE scaling factors of the real model
// (factor 32, low/high frequency factors 1 and 4, original context 8192), as convert_hf_to_gguf writes them.
// Weights are gaussian (std 0.02 unless --weight-std; biases too; norms 1, or 1 + N(0, 0.2) with
// --random-norms), a pure function of (seed, tensor, row): the same seed gives the same file whatever the
// thread count.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/args.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "quant/quant_mix.h"
#include "quant/quant_ref.h"

using namespace minnow;

namespace {

struct Preset {
  const char* name;
  const char* arch;  // general.architecture
  int64_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_ctx, n_vocab;
  double rope_base, rms_eps;
  bool tied_output;
  int64_t head_dim = 0;        // 0: n_embd / n_head (else written as attention.key_length/value_length)
  int64_t n_rot = 0;           // 0: head_dim
  int64_t swa_window = 0;      // gemma3: attention.sliding_window
  int64_t swa_pattern = 0;     // gemma3: attention.sliding_window_pattern (0: key omitted, llama.cpp's 6)
  double softcap = 0;          // gemma3: final_logit_softcapping (0: key omitted)
};

const Preset kPresets[] = {
    {"tinyllama-1.1b", "llama", 22, 2048, 32, 4, 5632, 2048, 32000, 10000.0, 1e-5, false},
    {"llama-3.2-1b", "llama", 16, 2048, 32, 8, 8192, 131072, 128256, 500000.0, 1e-5, true},
    {"smollm2-135m", "llama", 30, 576, 9, 3, 1536, 8192, 49152, 100000.0, 1e-5, true},
    {"qwen2.5-0.5b", "qwen2", 24, 896, 14, 2, 4864, 32768, 151936, 1000000.0, 1e-6, true},
    {"qwen3-0.6b", "qwen3", 28, 1024, 16, 8, 3072, 40960, 151936, 1000000.0, 1e-6, true, 128},
    {"gemma3-1b", "gemma3", 26, 1152, 4, 1, 6912, 32768, 262144, 1000000.0, 1e-6, true, 256, 0, 512},
    {"phi3-mini", "phi3", 32, 3072, 32, 32, 8192, 4096, 32064, 10000.0, 1e-5, false},
    // Tiny shapes for the whole-model tests: every feature of the architecture, awkward where allowed.
    {"tiny-llama", "llama", 2, 64, 4, 2, 96, 4096, 32000, 10000.0, 1e-5, false},
    {"tiny-qwen2", "qwen2", 2, 64, 4, 2, 96, 4096, 32000, 1000000.0, 1e-6, false},
    {"tiny-qwen3", "qwen3", 2, 64, 4, 2, 96, 4096, 32000, 1000000.0, 1e-6, true, 32},
    {"tiny-gemma3", "gemma3", 3, 64, 4, 1, 96, 4096, 32000, 1000000.0, 1e-6, true, 32, 0, 5, 3, 30.0},
    {"tiny-phi3", "phi3", 2, 64, 4, 2, 96, 4096, 32000, 10000.0, 1e-5, false, 0, 8},
};

// splitmix64: a counter-based stream, so any row can be generated independently.
uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// n gaussian values with standard deviation sd (Box-Muller), determined by key.
void gaussian_row(uint64_t key, float sd, float* out, int64_t n) {
  uint64_t state = mix64(key);
  for (int64_t i = 0; i < n; i += 2) {
    state = mix64(state);
    const double u1 = (static_cast<double>(state >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
    state = mix64(state);
    const double u2 = static_cast<double>(state >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)) * sd;
    out[i] = static_cast<float>(r * std::cos(6.283185307179586 * u2));
    if (i + 1 < n) out[i + 1] = static_cast<float>(r * std::sin(6.283185307179586 * u2));
  }
}

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] innermost
};

// llama3-style RoPE frequency factors (one per rotated pair), as Meta's reference and llama.cpp compute them.
std::vector<float> llama3_rope_factors(int64_t head_dim, double base) {
  const double factor = 32.0, low_freq_factor = 1.0, high_freq_factor = 4.0, old_ctx = 8192.0;
  const double low_freq_wavelen = old_ctx / low_freq_factor, high_freq_wavelen = old_ctx / high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < head_dim; i += 2) {
    const double freq = 1.0 / std::pow(base, static_cast<double>(i) / static_cast<double>(head_dim));
    const double wavelen = 2.0 * 3.141592653589793 / freq;
    double f;
    if (wavelen < high_freq_wavelen) f = 1.0;
    else if (wavelen > low_freq_wavelen) f = factor;
    else {
      const double smooth = (old_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      f = 1.0 / ((1.0 - smooth) / factor + smooth);
    }
    out.push_back(static_cast<float>(f));
  }
  return out;
}

int64_t head_dim_of(const Preset& p) { return p.head_dim ? p.head_dim : p.n_embd / p.n_head; }

// The tensors llama.cpp loads for the preset's architecture, in its order.
std::vector<TensorSpec> tensor_list(const Preset& p, int64_t n_vocab) {
  const std::string arch = p.arch;
  const int64_t hd = head_dim_of(p), q_dim = hd * p.n_head, kv_dim = hd * p.n_head_kv;
  std::vector<TensorSpec> v;
  v.push_back({"token_embd.weight", {p.n_embd, n_vocab}});
  for (int64_t l = 0; l < p.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    v.push_back({b + "attn_norm.weight", {p.n_embd}});
    if (arch == "phi3") {
      v.push_back({b + "attn_qkv.weight", {p.n_embd, q_dim + 2 * kv_dim}});
    } else {
      v.push_back({b + "attn_q.weight", {p.n_embd, q_dim}});
      v.push_back({b + "attn_k.weight", {p.n_embd, kv_dim}});
      v.push_back({b + "attn_v.weight", {p.n_embd, kv_dim}});
    }
    if (arch == "qwen2") {
      v.push_back({b + "attn_q.bias", {q_dim}});
      v.push_back({b + "attn_k.bias", {kv_dim}});
      v.push_back({b + "attn_v.bias", {kv_dim}});
    }
    if (arch == "qwen3" || arch == "gemma3") {
      v.push_back({b + "attn_q_norm.weight", {hd}});
      v.push_back({b + "attn_k_norm.weight", {hd}});
    }
    v.push_back({b + "attn_output.weight", {q_dim, p.n_embd}});
    if (arch == "gemma3") v.push_back({b + "post_attention_norm.weight", {p.n_embd}});
    v.push_back({b + "ffn_norm.weight", {p.n_embd}});
    if (arch == "phi3") {
      v.push_back({b + "ffn_up.weight", {p.n_embd, 2 * p.n_ff}});  // gate rows first, then up
    } else {
      v.push_back({b + "ffn_gate.weight", {p.n_embd, p.n_ff}});
      v.push_back({b + "ffn_up.weight", {p.n_embd, p.n_ff}});
    }
    v.push_back({b + "ffn_down.weight", {p.n_ff, p.n_embd}});
    if (arch == "gemma3") v.push_back({b + "post_ffw_norm.weight", {p.n_embd}});
  }
  v.push_back({"output_norm.weight", {p.n_embd}});
  if (!p.tied_output) v.push_back({"output.weight", {p.n_embd, n_vocab}});
  return v;
}

int run(int argc, char** argv) {
  std::string preset_name, vocab_path, type_name_s = "Q4_K_M", out_path;
  int64_t seed = 42, layers = -1;
  bool llama3_rope = false, random_norms = false, longrope = false;
  double weight_std = 0.02;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ArgParser ap("synth_model");
  std::string names;
  for (const Preset& p : kPresets) names += (names.empty() ? "" : " | ") + std::string(p.name);
  ap.add_string({"--preset"}, &preset_name, names);
  ap.add_string({"--vocab"}, &vocab_path, "GGUF file whose tokenizer.* metadata is copied");
  ap.add_string({"--type"}, &type_name_s, "llama-quantize type name (default Q4_K_M)");
  ap.add_string({"-o", "--output"}, &out_path, "output GGUF path");
  ap.add_int({"--seed"}, &seed, "random seed (default 42)");
  ap.add_int({"--layers"}, &layers, "override the number of layers");
  ap.add_int({"-t", "--threads"}, &threads, "worker threads (default: all cores)");
  ap.add_flag({"--llama3-rope"}, &llama3_rope, "add rope_freqs.weight (llama3 RoPE scaling; llama-3.2-1b, tiny-llama)");
  ap.add_flag({"--longrope"}, &longrope, "add rope_factors_short/long.weight (LongRoPE, phi3 presets)");
  ap.add_float({"--weight-std"}, &weight_std, "standard deviation of weights and biases (default 0.02)");
  ap.add_flag({"--random-norms"}, &random_norms, "norm weights 1 + N(0, 0.2) instead of 1");
  if (!ap.parse(argc, argv, 1)) return 0;
  if (preset_name.empty() || vocab_path.empty() || out_path.empty())
    throw Error("--preset, --vocab and -o are required");
  const Preset* found = nullptr;
  for (const Preset& p : kPresets)
    if (preset_name == p.name) found = &p;
  if (!found) throw Error("unknown preset '" + preset_name + "' (" + names + ")");
  if (!(weight_std > 0) || !(weight_std < 10)) throw Error("--weight-std must be in (0, 10)");
  Preset p = *found;
  if (ap.was_set("--layers")) {
    if (layers < 1 || layers > 1000) throw Error("--layers must be between 1 and 1000");
    p.n_layer = layers;
  }
  if (llama3_rope && preset_name != "llama-3.2-1b" && preset_name != "tiny-llama")
    throw Error("--llama3-rope is for the llama-3.2-1b and tiny-llama presets");
  if (longrope && std::string(p.arch) != "phi3") throw Error("--longrope is for the phi3 presets");
  if (threads < 1 || threads > 1024) throw Error("-t must be between 1 and 1024");
  const QuantTarget target = parse_quant_target(type_name_s);
  const auto t0 = std::chrono::steady_clock::now();

  auto vocab = GgufFile::open(vocab_path);
  const GgufValue* tokens = vocab->find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type() != GgufValueType::ARRAY || tokens->array_size() == 0)
    throw Error(vocab_path + " has no tokenizer.ggml.tokens array");
  const int64_t n_vocab = static_cast<int64_t>(tokens->array_size());
  if (n_vocab != p.n_vocab)
    std::fprintf(stderr, "note: %s has %lld tokens, not %s's %lld: using %lld\n", vocab_path.c_str(),
                 static_cast<long long>(n_vocab), p.name, static_cast<long long>(p.n_vocab),
                 static_cast<long long>(n_vocab));

  GgufWriter w;
  const std::string a = std::string(p.arch) + ".";
  const int64_t hd = head_dim_of(p);
  w.set_string("general.architecture", p.arch);
  w.set_string("general.name", std::string("synthetic ") + p.name);
  w.set_u32("general.quantization_version", 2);
  w.set_u32("general.file_type", static_cast<uint32_t>(target.ftype));
  w.set_u32(a + "context_length", static_cast<uint32_t>(p.n_ctx));
  w.set_u32(a + "embedding_length", static_cast<uint32_t>(p.n_embd));
  w.set_u32(a + "block_count", static_cast<uint32_t>(p.n_layer));
  w.set_u32(a + "feed_forward_length", static_cast<uint32_t>(p.n_ff));
  w.set_u32(a + "rope.dimension_count", static_cast<uint32_t>(p.n_rot ? p.n_rot : hd));
  w.set_u32(a + "attention.head_count", static_cast<uint32_t>(p.n_head));
  w.set_u32(a + "attention.head_count_kv", static_cast<uint32_t>(p.n_head_kv));
  if (p.head_dim) {
    w.set_u32(a + "attention.key_length", static_cast<uint32_t>(hd));
    w.set_u32(a + "attention.value_length", static_cast<uint32_t>(hd));
  }
  w.set_f32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(p.rms_eps));
  w.set_f32(a + "rope.freq_base", static_cast<float>(p.rope_base));
  if (p.swa_window) {
    w.set_u32(a + "attention.sliding_window", static_cast<uint32_t>(p.swa_window));
    if (p.swa_pattern) w.set_u32(a + "attention.sliding_window_pattern", static_cast<uint32_t>(p.swa_pattern));
    w.set_f32(a + "rope.freq_base_swa", 10000.0f);
  }
  if (p.softcap > 0) w.set_f32(a + "final_logit_softcapping", static_cast<float>(p.softcap));
  if (longrope) {
    const double orig = static_cast<double>(p.n_ctx / 2);
    w.set_string(a + "rope.scaling.type", "longrope");
    w.set_u32(a + "rope.scaling.original_context_length", static_cast<uint32_t>(p.n_ctx / 2));
    w.set_f32(a + "rope.scaling.attn_factor",
              static_cast<float>(std::sqrt(1.0 + std::log(static_cast<double>(p.n_ctx) / orig) / std::log(orig))));
  }
  w.set_u32(a + "vocab_size", static_cast<uint32_t>(n_vocab));
  for (const auto& [key, value] : vocab->metadata())
    if (key.rfind("tokenizer.", 0) == 0) w.copy_value(key, value);

  MixModelInfo info{p.n_layer, p.n_head, p.n_head_kv, !p.tied_output};
  MixPlanner planner(target, info);
  ThreadPool pool(threads);
  size_t total = 0;
  const auto specs = tensor_list(p, n_vocab);
  for (size_t ti = 0; ti < specs.size(); ++ti) {
    const TensorSpec& s = specs[ti];
    const int64_t ne0 = s.ne[0];
    const int64_t rows = s.ne.size() > 1 ? s.ne[1] : 1;
    const GgmlType type = planner.choose(s.name, static_cast<uint32_t>(s.ne.size()), ne0, GgmlType::F32);
    const size_t rb = row_bytes(type, ne0);
    std::vector<uint8_t> data(rb * static_cast<size_t>(rows));
    const bool is_norm = s.ne.size() == 1 && s.name.find(".bias") == std::string::npos;
    pool.parallel_for(rows, [&](int64_t begin, int64_t end, int) {
      std::vector<float> row(static_cast<size_t>(ne0));
      for (int64_t r = begin; r < end; ++r) {
        const uint64_t key = mix64(static_cast<uint64_t>(seed) * 0x100000001B3ull + ti) ^ static_cast<uint64_t>(r);
        if (is_norm && !random_norms) {
          std::fill(row.begin(), row.end(), 1.0f);
        } else if (is_norm) {
          gaussian_row(key, 0.2f, row.data(), ne0);
          for (float& x : row) x += 1.0f;
        } else {
          gaussian_row(key, static_cast<float>(weight_std), row.data(), ne0);
        }
        quantize_row_ref(type, row.data(), data.data() + static_cast<size_t>(r) * rb, ne0);
      }
    });
    w.add_tensor(s.name, type, s.ne, data.data(), data.size());
    total += data.size();
  }
  if (llama3_rope) {
    const auto factors = llama3_rope_factors(p.n_rot ? p.n_rot : hd, p.rope_base);
    w.add_tensor("rope_freqs.weight", GgmlType::F32, {static_cast<int64_t>(factors.size())}, factors.data(),
                 factors.size() * sizeof(float));
  }
  if (longrope) {
    const int64_t n_pairs = (p.n_rot ? p.n_rot : hd) / 2;
    std::vector<float> shrt, lng;
    for (int64_t i = 0; i < n_pairs; ++i) {
      shrt.push_back(1.0f + 0.05f * static_cast<float>(i));
      lng.push_back(1.0f + 0.7f * static_cast<float>(i));
    }
    w.add_tensor("rope_factors_long.weight", GgmlType::F32, {n_pairs}, lng.data(), lng.size() * sizeof(float));
    w.add_tensor("rope_factors_short.weight", GgmlType::F32, {n_pairs}, shrt.data(), shrt.size() * sizeof(float));
  }
  w.write(out_path);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %s, %lld layers, vocab %lld, %s, %.1f MiB tensor data, %.2f s on %d threads\n", out_path.c_str(),
              p.name, static_cast<long long>(p.n_layer), static_cast<long long>(n_vocab), target.name.c_str(),
              static_cast<double>(total) / 1048576.0, secs, threads);
  return 0;
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
