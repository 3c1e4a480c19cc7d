#include "model/model.h"

#include <set>

#include "common/error.h"
#include "gguf/gguf_file.h"

namespace minnow {

size_t WeightView::row_stride() const { return row_bytes(type, ne[0]); }

namespace {

std::string shape_str(int64_t a, int64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + "]"; }

// Finds a tensor and checks its shape ([ne0] for 1-D when ne1 == 0, else [ne0, ne1]) and type.
WeightView get(const GgufFile& f, std::set<std::string>& used, const std::string& name, int64_t ne0,
               int64_t ne1, bool norm) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t) throw Error("missing tensor " + name);
  used.insert(name);
  const bool is_1d = ne1 == 0;
  const int64_t want1 = is_1d ? 1 : ne1;
  if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1)
    throw Error("tensor " + name + " has shape [" + std::to_string(t->ne[0]) + ", " + std::to_string(t->ne[1]) +
                ", " + std::to_string(t->ne[2]) + ", " + std::to_string(t->ne[3]) + "], expected " +
                (is_1d ? "[" + std::to_string(ne0) + "]" : shape_str(ne0, ne1)));
  auto tr = type_traits(static_cast<uint32_t>(t->type));
  if (!tr || !tr->supported)
    throw Error("tensor " + name + " has unsupported type " + (tr ? std::string(tr->name) : std::string("unknown")));
  if (norm && t->type != GgmlType::F32)
    throw Error("tensor " + name + " has type " + std::string(type_name(t->type)) + ", expected f32");
  if (ne0 % tr->block_size != 0)
    throw Error("tensor " + name + ": row length " + std::to_string(ne0) + " is not a multiple of the " +
                tr->name + " block size");
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

}  // namespace

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path) { return from_gguf(GgufFile::open(path)); }

std::unique_ptr<Model> Model::from_gguf(std::unique_ptr<GgufFile> file) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::move(file);
  const GgufFile& f = *m->file_;
  m->params_ = ModelParams::from_gguf(f);
  const ModelParams& p = m->params_;
  std::set<std::string> used;

  m->token_embd = get(f, used, "token_embd.weight", p.n_embd, p.n_vocab, false);
  m->output_norm = get(f, used, "output_norm.weight", p.n_embd, 0, true);
  if (f.find_tensor("output.weight")) {
    m->output = get(f, used, "output.weight", p.n_embd, p.n_vocab, false);
  } else {
    m->output = m->token_embd;
    m->output_tied = true;
  }
  m->layers.resize(static_cast<size_t>(p.n_layer));
  for (int64_t l = 0; l < p.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    LayerWeights& L = m->layers[static_cast<size_t>(l)];
    L.attn_norm = get(f, used, b + "attn_norm.weight", p.n_embd, 0, true);
    L.attn_q = get(f, used, b + "attn_q.weight", p.n_embd, p.q_dim(), false);
    L.attn_k = get(f, used, b + "attn_k.weight", p.n_embd, p.k_dim(), false);
    L.attn_v = get(f, used, b + "attn_v.weight", p.n_embd, p.v_dim(), false);
    L.attn_output = get(f, used, b + "attn_output.weight", p.n_head * p.head_dim_v, p.n_embd, false);
    L.ffn_norm = get(f, used, b + "ffn_norm.weight", p.n_embd, 0, true);
    L.ffn_gate = get(f, used, b + "ffn_gate.weight", p.n_embd, p.n_ff, false);
    L.ffn_up = get(f, used, b + "ffn_up.weight", p.n_embd, p.n_ff, false);
    L.ffn_down = get(f, used, b + "ffn_down.weight", p.n_ff, p.n_embd, false);
    used.insert(b + "attn_rot_embd");  // legacy, unused by llama.cpp too
  }
  // A tensor we would silently ignore means a model variant we do not implement (biases, MoE, ...).
  for (const auto& t : f.tensors())
    if (!used.count(t.name))
      throw Error("unexpected tensor " + t.name + " (unsupported variant of " + p.arch + ")");
  return m;
}

size_t Model::weight_bytes() const {
  // The embedding contributes one row per token; the output matrix (tied or not) is read whole.
  size_t total = output_norm.nbytes + output.nbytes + token_embd.row_stride();
  for (const auto& L : layers)
    total += L.attn_norm.nbytes + L.attn_q.nbytes + L.attn_k.nbytes + L.attn_v.nbytes + L.attn_output.nbytes +
             L.ffn_norm.nbytes + L.ffn_gate.nbytes + L.ffn_up.nbytes + L.ffn_down.nbytes;
  return total;
}

}  // namespace minnow
