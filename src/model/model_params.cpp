#include "model/model_params.h"

#include <cmath>
#include <limits>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "model/arch.h"

namespace minnow {

namespace {

// Checks block_count against the tensor table before anything is sized by it: every layer has tensors of its
// own, so the file must hold at least block_count tensors and some tensor of the last layer ("blk.N-1.").
// A hostile count (10^7) then fails at once instead of allocating per-layer state first.
void check_block_count(const GgufFile& f, const std::string& key, int64_t n_layer) {
  const auto& ts = f.tensors();
  if (static_cast<uint64_t>(n_layer) > ts.size())
    throw Error("metadata " + key + " = " + std::to_string(n_layer) + " is more than the file's " +
                std::to_string(ts.size()) + " tensors");
  const std::string last = "blk." + std::to_string(n_layer - 1) + ".";
  for (const auto& t : ts)
    if (t.name.compare(0, last.size(), last) == 0) return;
  throw Error("metadata " + key + " = " + std::to_string(n_layer) + " but the file has no tensors of layer " +
              std::to_string(n_layer - 1) + " (" + last + "*)");
}

}  // namespace

ModelParams ModelParams::from_gguf(const GgufFile& f) {
  ModelParams p;
  auto arch = f.get_string("general.architecture");
  if (!arch) throw Error("missing metadata key general.architecture");
  p.arch = std::string(*arch);
  const ArchDesc* desc = find_arch(p.arch);
  if (!desc) throw Error("unsupported architecture '" + p.arch + "' (supported: " + supported_archs() + ")");
  const MetaReader meta(f, p.arch);
  const std::string& pre = meta.prefix();

  p.n_layer = meta.req_int("block_count");
  check_block_count(f, pre + "block_count", p.n_layer);
  p.n_embd = meta.req_int("embedding_length");
  p.n_head = meta.req_int("attention.head_count");
  p.n_head_kv = meta.opt_int("attention.head_count_kv", p.n_head);
  p.n_ff = meta.req_int("feed_forward_length");
  p.n_ctx_train = meta.req_int("context_length");
  if (p.n_head % p.n_head_kv != 0)
    throw Error("attention.head_count (" + std::to_string(p.n_head) + ") is not a multiple of head_count_kv (" +
                std::to_string(p.n_head_kv) + ")");
  const bool has_k = f.find(pre + "attention.key_length") != nullptr;
  const bool has_v = f.find(pre + "attention.value_length") != nullptr;
  if ((!has_k || !has_v) && p.n_embd % p.n_head != 0)
    throw Error("embedding_length is not a multiple of attention.head_count");
  p.head_dim_k = meta.opt_int("attention.key_length", p.n_embd / p.n_head);
  p.head_dim_v = meta.opt_int("attention.value_length", p.n_embd / p.n_head);
  if (p.head_dim_k != p.head_dim_v)
    throw Error("attention.key_length != attention.value_length is not supported");
  p.n_rot = meta.opt_int("rope.dimension_count", p.head_dim_k);
  if (p.n_rot > p.head_dim_k || p.n_rot % 2 != 0)
    throw Error("rope.dimension_count (" + std::to_string(p.n_rot) + ") must be even and <= the head size (" +
                std::to_string(p.head_dim_k) + ")");

  p.rope_freq_base = meta.positive_float("rope.freq_base", 10000.0);

  auto eps = f.get_float(pre + "attention.layer_norm_rms_epsilon");
  if (!eps) throw Error("missing metadata key " + pre + "attention.layer_norm_rms_epsilon");
  if (!(*eps > 0) || !std::isfinite(*eps)) throw Error("metadata layer_norm_rms_epsilon must be positive");
  p.rms_eps = *eps;

  // RoPE scaling: only none/linear. Older files use rope.scale_linear.
  std::string scaling_type = "none";
  if (auto t = f.get_string(pre + "rope.scaling.type")) scaling_type = std::string(*t);
  double factor = 0;
  if (auto fac = f.get_float(pre + "rope.scaling.factor")) factor = *fac;
  if (auto lin = f.get_float(pre + "rope.scale_linear"); lin && scaling_type == "none") {
    scaling_type = "linear";
    factor = *lin;
  }
  if (scaling_type == "linear") {
    if (factor != 0 && factor != 1) {
      if (!(factor > 0) || !std::isfinite(factor)) throw Error("metadata rope.scaling.factor must be positive");
      p.rope_freq_scale = 1.0 / factor;
    }
  } else if (scaling_type != "none" && scaling_type != "longrope") {
    // longrope: the scaling is in per-dimension factor tensors (phi3's rope_factors_long/short)
    throw Error("unsupported rope scaling type '" + scaling_type + "' (supported: none, linear, longrope)");
  }
  p.features.rope_attn_factor = meta.positive_float("rope.scaling.attn_factor", 1.0);
  p.n_ctx_orig = meta.opt_int("rope.scaling.original_context_length", p.n_ctx_train);
  p.features.attn_scale = 1.0 / std::sqrt(static_cast<double>(p.head_dim_k));
  p.layer.assign(static_cast<size_t>(p.n_layer), LayerSpec{0, p.rope_freq_base, p.rope_freq_scale});

  const GgufValue* toks = f.find("tokenizer.ggml.tokens");
  if (!toks) throw Error("missing metadata key tokenizer.ggml.tokens");
  if (toks->type() != GgufValueType::ARRAY) throw Error("tokenizer.ggml.tokens is not an array");
  p.n_vocab = static_cast<int64_t>(toks->array_size());
  if (p.n_vocab <= 0 || p.n_vocab > std::numeric_limits<int32_t>::max())
    throw Error("tokenizer.ggml.tokens has an invalid length");

  desc->read_params(meta, p);  // the architecture's own keys and quirks
  return p;
}

std::string ModelParams::summary() const {
  return arch + ": n_layer=" + std::to_string(n_layer) + " n_embd=" + std::to_string(n_embd) +
         " n_head=" + std::to_string(n_head) + " n_head_kv=" + std::to_string(n_head_kv) +
         " head_dim=" + std::to_string(head_dim_k) + " n_ff=" + std::to_string(n_ff) +
         " n_rot=" + std::to_string(n_rot) + " rope_base=" + std::to_string(rope_freq_base) +
         " n_vocab=" + std::to_string(n_vocab) + " n_ctx_train=" + std::to_string(n_ctx_train);
}

}  // namespace minnow
