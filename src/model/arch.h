#pragma once
// The architecture layer: one file per architecture (src/model/arch_<name>.cpp) says which metadata keys it
// reads, which tensors it has and how its quirks map onto the canonical layer (model/layer_spec.h). The
// registry (arch_registry.cpp) finds an architecture by general.architecture; ModelParams::from_gguf and
// Model::from_gguf dispatch through it. Backends never see this: they read ModelParams and the weights.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/model_params.h"

namespace minnow {

class GgufFile;

// Reads metadata keys under "{arch}." with the checks every architecture shares.
class MetaReader {
 public:
  MetaReader(const GgufFile& f, const std::string& arch) : f_(f), pre_(arch + ".") {}
  const GgufFile& file() const { return f_; }
  const std::string& prefix() const { return pre_; }
  int64_t req_int(const std::string& key) const;                 // positive, else Error naming the key
  int64_t opt_int(const std::string& key, int64_t dflt) const;   // positive when present
  std::optional<double> opt_float(const std::string& key) const;
  double positive_float(const std::string& key, double dflt) const;  // finite and > 0 when present

 private:
  const GgufFile& f_;
  std::string pre_;
};

// Finds tensors, checks shapes and types, and remembers which were used so that an unexpected one is refused.
class TensorTable {
 public:
  explicit TensorTable(const GgufFile& f) : f_(f) {}
  // [ne0] when ne1 == 0, else [ne0, ne1]. f32_only: norms, biases, factors. Missing: Error naming it.
  WeightView get(const std::string& name, int64_t ne0, int64_t ne1, bool f32_only = false);
  // As get, but data == nullptr when the file has no such tensor.
  WeightView opt(const std::string& name, int64_t ne0, int64_t ne1, bool f32_only = false);
  bool has(const std::string& name) const;
  void ignore(const std::string& name) { used_.insert(name); }
  // Every tensor of the file was used; else Error naming the first that was not.
  void check_all_used(const std::string& arch) const;

 private:
  const GgufFile& f_;
  std::set<std::string> used_;
};

// Rows [row0, row0 + n_rows) of a 2-D tensor as a tensor of its own (fused tensors become views).
WeightView row_view(const WeightView& w, int64_t row0, int64_t n_rows, const std::string& name);

struct ArchDesc {
  const char* name;  // general.architecture
  // Reads the architecture's own keys and sets its features and per-layer specs; the common keys (counts,
  // head sizes, rope base, eps, vocab) are already in p, and p.layer holds n_layer default specs.
  void (*read_params)(const MetaReader& meta, ModelParams& p);
  // Fills the model's tensors (token_embd, output_norm, output, layers, rope_freqs) from the table.
  void (*load_tensors)(TensorTable& t, const ModelParams& p, Model& m);
};

const ArchDesc* find_arch(const std::string& name);  // nullptr when unsupported
std::string supported_archs();                       // "gemma3, llama, phi3, qwen2, qwen3"

// Shared pieces the architecture files compose.
// token_embd, output_norm, output (tied to token_embd when the file has none).
void load_embeddings_and_output(TensorTable& t, const ModelParams& p, Model& m);
// attn_norm, separate attn_q/k/v, attn_output, and the biases p.features says are there (bq/bk/bv, bo).
void load_attention(TensorTable& t, const ModelParams& p, int64_t l, LayerWeights& L);
// ffn_norm, ffn_gate, ffn_up, ffn_down.
void load_ffn(TensorTable& t, const ModelParams& p, int64_t l, LayerWeights& L);
// attn_q_norm / attn_k_norm [head_dim] (qk_norm).
void load_qk_norm(TensorTable& t, const ModelParams& p, int64_t l, LayerWeights& L);
// Bias features from layer 0's tensors (later layers must then have them too, or lack them too).
void read_bias_features(const MetaReader& meta, ModelParams& p);
std::string blk(int64_t l);  // "blk.L."

// Internal: the per-architecture descriptors (defined in arch_<name>.cpp).
extern const ArchDesc kArchLlama, kArchQwen2, kArchQwen3, kArchGemma3, kArchPhi3;

}  // namespace minnow
