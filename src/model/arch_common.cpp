// What the architecture files share: metadata reading with range checks, the tensor table (shape and type
// checks, the unexpected-tensor check) and the tensor groups most decoder layers have.
#include <cmath>

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "model/arch.h"

namespace minnow {

int64_t MetaReader::req_int(const std::string& key) const {
  const int64_t v = f_.require_int(pre_ + key);
  if (v <= 0 || v > (int64_t{1} << 31))
    throw Error("metadata " + pre_ + key + " = " + std::to_string(v) + " is out of range");
  return v;
}

int64_t MetaReader::opt_int(const std::string& key, int64_t dflt) const {
  return f_.get_int(pre_ + key) ? req_int(key) : dflt;
}

std::optional<double> MetaReader::opt_float(const std::string& key) const { return f_.get_float(pre_ + key); }

double MetaReader::positive_float(const std::string& key, double dflt) const {
  const auto v = f_.get_float(pre_ + key);
  if (!v) return dflt;
  if (!(*v > 0) || !std::isfinite(*v)) throw Error("metadata " + pre_ + key + " must be a positive number");
  return *v;
}

namespace {
std::string dims(int64_t a, int64_t b) {
  return b == 0 ? "[" + std::to_string(a) + "]" : "[" + std::to_string(a) + ", " + std::to_string(b) + "]";
}
}  // namespace

bool TensorTable::has(const std::string& name) const { return f_.find_tensor(name) != nullptr; }

WeightView TensorTable::opt(const std::string& name, int64_t ne0, int64_t ne1, bool f32_only) {
  if (!has(name)) return WeightView{};
  return get(name, ne0, ne1, f32_only);
}

WeightView TensorTable::get(const std::string& name, int64_t ne0, int64_t ne1, bool f32_only) {
  const GgufTensorInfo* t = f_.find_tensor(name);
  if (!t) throw Error("missing tensor " + name);
  used_.insert(name);
  const int64_t want1 = ne1 == 0 ? 1 : ne1;
  if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1)
    throw Error("tensor " + name + " has shape [" + std::to_string(t->ne[0]) + ", " + std::to_string(t->ne[1]) +
                ", " + std::to_string(t->ne[2]) + ", " + std::to_string(t->ne[3]) + "], expected " + dims(ne0, ne1));
  auto tr = type_traits(static_cast<uint32_t>(t->type));
  if (!tr || !tr->supported)
    throw Error("tensor " + name + " has unsupported type " + (tr ? std::string(tr->name) : std::string("unknown")));
  if (f32_only && t->type != GgmlType::F32)
    throw Error("tensor " + name + " has type " + std::string(type_name(t->type)) + ", expected f32");
  if (ne0 % tr->block_size != 0)
    throw Error("tensor " + name + ": row length " + std::to_string(ne0) + " is not a multiple of the " + tr->name +
                " block size");
  WeightView w;
  w.name = name;
  w.data = t->data;
  w.type = t->type;
  w.ne[0] = ne0;
  w.ne[1] = want1;
  w.nbytes = row_bytes(t->type, ne0) * static_cast<size_t>(want1);
  if (w.nbytes != t->nbytes) throw Error("tensor " + name + " has an inconsistent byte size");
  return w;
}

void TensorTable::check_all_used(const std::string& arch) const {
  // A tensor we would silently ignore means a model variant we do not implement (MoE, extra heads, ...).
  for (const auto& t : f_.tensors())
    if (!used_.count(t.name)) throw Error("unexpected tensor " + t.name + " (unsupported variant of " + arch + ")");
}

WeightView row_view(const WeightView& w, int64_t row0, int64_t n_rows, const std::string& name) {
  if (row0 < 0 || n_rows <= 0 || row0 + n_rows > w.ne[1])
    throw Error("tensor " + w.name + " has too few rows for " + name);
  WeightView v = w;
  v.name = name;
  v.data = w.data + static_cast<size_t>(row0) * w.row_stride();
  v.ne[1] = n_rows;
  v.nbytes = w.row_stride() * static_cast<size_t>(n_rows);
  return v;
}

std::string blk(int64_t l) { return "blk." + std::to_string(l) + "."; }

void load_embeddings_and_output(TensorTable& t, const ModelParams& p, Model& m) {
  m.token_embd = t.get("token_embd.weight", p.n_embd, p.n_vocab);
  m.output_norm = t.get("output_norm.weight", p.n_embd, 0, true);
  if (t.has("output.weight")) {
    m.output = t.get("output.weight", p.n_embd, p.n_vocab);
  } else {
    m.output = m.token_embd;
    m.output_tied = true;
  }
}

void read_bias_features(const MetaReader& meta, ModelParams& p) {
  const GgufFile& f = meta.file();
  const bool bq = f.find_tensor("blk.0.attn_q.bias") != nullptr, bk = f.find_tensor("blk.0.attn_k.bias") != nullptr,
             bv = f.find_tensor("blk.0.attn_v.bias") != nullptr;
  if (bq != bk || bq != bv) throw Error("tensors blk.0.attn_{q,k,v}.bias: some are missing (all three or none)");
  p.features.qkv_bias = bq;
  p.features.o_bias = f.find_tensor("blk.0.attn_output.bias") != nullptr;
}

void load_attention(TensorTable& t, const ModelParams& p, int64_t l, LayerWeights& L) {
  const std::string b = blk(l);
  L.attn_norm = t.get(b + "attn_norm.weight", p.n_embd, 0, true);
  L.attn_q = t.get(b + "attn_q.weight", p.n_embd, p.q_dim());
  L.attn_k = t.get(b + "attn_k.weight", p.n_embd, p.k_dim());
  L.attn_v = t.get(b + "attn_v.weight", p.n_embd, p.v_dim());
  L.attn_output = t.get(b + "attn_output.weight", p.n_head * p.head_dim_v, p.n_embd);
  if (p.features.qkv_bias) {
    L.bq = t.get(b + "attn_q.bias", p.q_dim(), 0, true);
    L.bk = t.get(b + "attn_k.bias", p.k_dim(), 0, true);
    L.bv = t.get(b + "attn_v.bias", p.v_dim(), 0, true);
  }
  if (p.features.o_bias) L.bo = t.get(b + "attn_output.bias", p.n_embd, 0, true);
}

void load_ffn(TensorTable& t, const ModelParams& p, int64_t l, LayerWeights& L) {
  const std::string b = blk(l);
  L.ffn_norm = t.get(b + "ffn_norm.weight", p.n_embd, 0, true);
  L.ffn_gate = t.get(b + "ffn_gate.weight", p.n_embd, p.n_ff);
  L.ffn_up = t.get(b + "ffn_up.weight", p.n_embd, p.n_ff);
  L.ffn_down = t.get(b + "ffn_down.weight", p.n_ff, p.n_embd);
}

void load_qk_norm(TensorTable& t, const ModelParams& p, int64_t l, LayerWeights& L) {
  const std::string b = blk(l);
  L.attn_q_norm = t.get(b + "attn_q_norm.weight", p.head_dim_k, 0, true);
  L.attn_k_norm = t.get(b + "attn_k_norm.weight", p.head_dim_k, 0, true);
}

}  // namespace minnow
