// Per-tensor type choice, following llama.cpp's llama_tensor_get_type for the Llama architecture.
#include "quant/quant_mix.h"

#include <algorithm>
#include <cctype>

#include "common/error.h"

namespace minnow {

namespace {

struct Alias {
  const char* name;
  const char* canonical;
  FileType ftype;
  GgmlType type;
};

const Alias kTargets[] = {
    {"Q4_0", "Q4_0", FileType::Q4_0, GgmlType::Q4_0},
    {"Q4_1", "Q4_1", FileType::Q4_1, GgmlType::Q4_1},
    {"Q5_0", "Q5_0", FileType::Q5_0, GgmlType::Q5_0},
    {"Q5_1", "Q5_1", FileType::Q5_1, GgmlType::Q5_1},
    {"Q8_0", "Q8_0", FileType::Q8_0, GgmlType::Q8_0},
    {"Q2_K", "Q2_K", FileType::Q2_K, GgmlType::Q2_K},
    {"Q3_K", "Q3_K_M", FileType::Q3_K_M, GgmlType::Q3_K},
    {"Q3_K_S", "Q3_K_S", FileType::Q3_K_S, GgmlType::Q3_K},
    {"Q3_K_M", "Q3_K_M", FileType::Q3_K_M, GgmlType::Q3_K},
    {"Q3_K_L", "Q3_K_L", FileType::Q3_K_L, GgmlType::Q3_K},
    {"Q4_K", "Q4_K_M", FileType::Q4_K_M, GgmlType::Q4_K},
    {"Q4_K_S", "Q4_K_S", FileType::Q4_K_S, GgmlType::Q4_K},
    {"Q4_K_M", "Q4_K_M", FileType::Q4_K_M, GgmlType::Q4_K},
    {"Q5_K", "Q5_K_M", FileType::Q5_K_M, GgmlType::Q5_K},
    {"Q5_K_S", "Q5_K_S", FileType::Q5_K_S, GgmlType::Q5_K},
    {"Q5_K_M", "Q5_K_M", FileType::Q5_K_M, GgmlType::Q5_K},
    {"Q6_K", "Q6_K", FileType::Q6_K, GgmlType::Q6_K},
    {"F16", "F16", FileType::MOSTLY_F16, GgmlType::F16},
    {"BF16", "BF16", FileType::MOSTLY_BF16, GgmlType::BF16},
    {"F32", "F32", FileType::ALL_F32, GgmlType::F32},
};

bool is_quantized(GgmlType t) { return traits(t).block_size > 1; }
bool contains(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }
bool ends_with(const std::string& s, std::string_view what) {
  return s.size() >= what.size() && s.compare(s.size() - what.size(), what.size(), what) == 0;
}

}  // namespace

// "blk.N." -> N, or -1.
int64_t layer_of(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int64_t v = 0;
  size_t i = 4;
  if (i >= name.size() || !std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
  while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])) && v < 1000000) v = v * 10 + (name[i++] - '0');
  return v;
}

QuantTarget parse_quant_target(std::string_view name) {
  std::string up(name);
  for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  // llama-quantize spells K types with a capital K; "q4_k_m" is accepted too.
  for (const Alias& a : kTargets)
    if (up == a.name) return QuantTarget{a.canonical, a.ftype, a.type};
  throw Error("unknown quantization type '" + std::string(name) + "' (known: " + quant_target_names() + ")");
}

std::string quant_target_names() {
  std::string s;
  for (const Alias& a : kTargets) {
    if (!s.empty()) s += ' ';
    s += a.name;
  }
  return s;
}

bool is_quantizable(const std::string& name, uint32_t n_dims) {
  return ends_with(name, "weight") && n_dims >= 2 && !contains(name, "_norm.weight") &&
         !contains(name, "ffn_gate_inp.weight");
}

bool use_more_bits(int64_t i_layer, int64_t n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

MixPlanner::MixPlanner(QuantTarget target, MixModelInfo info) : t_(std::move(target)), m_(info) {}

GgmlType MixPlanner::choose(const std::string& name, uint32_t n_dims, int64_t ne0, GgmlType current) {
  if (!is_quantizable(name, n_dims)) return current;
  GgmlType type = t_.default_type;
  if (is_quantized(type)) type = pick(name, ne0);
  return type;
}

GgmlType MixPlanner::pick(const std::string& name, int64_t ne0) {
  const FileType ft = t_.ftype;
  GgmlType type = t_.default_type;
  const int64_t n_gqa = m_.n_head_kv > 0 ? m_.n_head / m_.n_head_kv : 1;
  if (name == "output.weight" || (!m_.has_output && name == "token_embd.weight")) {
    if (ne0 % traits(type).block_size != 0) type = GgmlType::Q8_0;
    else if (type != GgmlType::Q8_0) type = GgmlType::Q6_K;
  } else if (name == "token_embd.weight") {
    // the default type
  } else if (contains(name, "attn_v.weight")) {
    // llama.cpp counts attn_v tensors in its (layer, name) order: the counter is the layer index.
    int64_t i = layer_of(name);
    if (i < 0) i = i_attn_v_;
    ++i_attn_v_;
    const int64_t n = m_.n_layer;
    if (ft == FileType::Q2_K) type = n_gqa >= 4 ? GgmlType::Q4_K : GgmlType::Q3_K;
    else if (ft == FileType::Q3_K_M) type = i < 2 ? GgmlType::Q5_K : GgmlType::Q4_K;
    else if (ft == FileType::Q3_K_L) type = GgmlType::Q5_K;
    else if ((ft == FileType::Q4_K_M || ft == FileType::Q5_K_M) && use_more_bits(i, n)) type = GgmlType::Q6_K;
    else if (ft == FileType::Q4_K_S && i < 4) type = GgmlType::Q5_K;
  } else if (contains(name, "ffn_down")) {
    int64_t i = layer_of(name);
    if (i < 0) i = i_ffn_down_;
    ++i_ffn_down_;
    const int64_t n = m_.n_layer;
    if (ft == FileType::Q2_K) type = GgmlType::Q3_K;
    else if (ft == FileType::Q3_K_M) type = i < n / 16 ? GgmlType::Q5_K : GgmlType::Q4_K;
    else if (ft == FileType::Q3_K_L) type = GgmlType::Q5_K;
    else if (ft == FileType::Q4_K_M && use_more_bits(i, n)) type = GgmlType::Q6_K;
    else if (ft == FileType::Q5_K_M && use_more_bits(i, n)) type = GgmlType::Q6_K;
    else if (ft == FileType::Q4_K_S && i < n / 8) type = GgmlType::Q5_K;
  } else if (contains(name, "attn_output.weight")) {
    if (ft == FileType::Q2_K) type = GgmlType::Q3_K;
    else if (ft == FileType::Q3_K_M) type = GgmlType::Q4_K;
    else if (ft == FileType::Q3_K_L) type = GgmlType::Q5_K;
  }
  // Rows that the chosen type cannot hold: llama.cpp's replacements (IQ4_NL, which minnow lacks, becomes Q4_0).
  if (ne0 % traits(type).block_size != 0) {
    ++n_fallback_;
    switch (type) {
      case GgmlType::Q2_K:
      case GgmlType::Q3_K: type = GgmlType::Q4_0; break;
      case GgmlType::Q4_K: type = GgmlType::Q5_0; break;
      case GgmlType::Q5_K: type = GgmlType::Q5_1; break;
      case GgmlType::Q6_K: type = GgmlType::Q8_0; break;
      default: type = GgmlType::F16; break;
    }
    if (ne0 % traits(type).block_size != 0) type = GgmlType::F16;
  }
  return type;
}

}  // namespace minnow
