#pragma once
// Quantization targets as llama-quantize names them ("Q4_K_M", "Q8_0", ...) and the per-tensor type choice of
// llama.cpp's llama_tensor_get_type for Llama models: which tensors are quantized at all, more bits for
// output.weight and for attn_v / ffn_down in the layers its use_more_bits rule picks, and fallbacks for rows
// that are not a multiple of the chosen type's block size.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "quant/ggml_type.h"

namespace minnow {

// llama.cpp's llama_ftype values (stored as general.file_type).
enum class FileType : int {
  ALL_F32 = 0, MOSTLY_F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10,
  Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17, Q6_K = 18,
  MOSTLY_BF16 = 32,
};

struct QuantTarget {
  std::string name;       // canonical llama-quantize name, e.g. "Q4_K_M"
  FileType ftype;
  GgmlType default_type;  // type of an ordinary 2-D weight
};

// Accepts llama-quantize's names (case-insensitive): Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K(=Q3_K_M) Q3_K_S
// Q3_K_M Q3_K_L Q4_K(=Q4_K_M) Q4_K_S Q4_K_M Q5_K(=Q5_K_M) Q5_K_S Q5_K_M Q6_K F16 BF16 F32. Throws Error otherwise.
QuantTarget parse_quant_target(std::string_view name);
std::string quant_target_names();  // for usage text

// What the planner needs to know about the model.
struct MixModelInfo {
  int64_t n_layer = 0;   // block count
  int64_t n_head = 1;
  int64_t n_head_kv = 1;
  bool has_output = true;  // a separate output.weight exists (else token_embd doubles as the output)
};

// Chooses the type of every tensor, in the model's tensor order (the attn_v counter matters).
class MixPlanner {
 public:
  MixPlanner(QuantTarget target, MixModelInfo info);
  // name, number of dims, ne[0] (row length) and current type. Returns the type to store it as; the
  // current type when the tensor is not to be quantized (1-D tensors, norms, non-weights).
  GgmlType choose(const std::string& name, uint32_t n_dims, int64_t ne0, GgmlType current);
  int fallbacks() const { return n_fallback_; }  // tensors that needed a compatible replacement type

 private:
  GgmlType pick(const std::string& name, int64_t ne0);
  QuantTarget t_;
  MixModelInfo m_;
  int64_t i_attn_v_ = 0;
  int64_t i_ffn_down_ = 0;
  int n_fallback_ = 0;
};

// Whether llama-quantize re-encodes a tensor at all: 2-D+ weights, except norms and MoE gate inputs.
bool is_quantizable(const std::string& name, uint32_t n_dims);

// "blk.N.xxx" -> N; -1 for tensors outside the blocks.
int64_t layer_of(const std::string& name);

// llama.cpp's use_more_bits: the first and last eighth of the layers, and every third layer in between.
bool use_more_bits(int64_t i_layer, int64_t n_layers);

}  // namespace minnow
