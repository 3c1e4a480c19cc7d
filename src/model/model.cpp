#include "model/model.h"

#include "common/error.h"
#include "gguf/gguf_file.h"
#include "model/arch.h"

namespace minnow {

size_t WeightView::row_stride() const { return row_bytes(type, ne[0]); }

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::string& path) { return from_gguf(GgufFile::open(path)); }

std::unique_ptr<Model> Model::from_gguf(std::unique_ptr<GgufFile> file) {
  std::unique_ptr<Model> m(new Model());
  m->file_ = std::move(file);
  const GgufFile& f = *m->file_;
  m->params_ = ModelParams::from_gguf(f);
  const ArchDesc* desc = find_arch(m->params_.arch);  // non-null: from_gguf checked it
  TensorTable table(f);
  desc->load_tensors(table, m->params_, *m);
  table.check_all_used(m->params_.arch);
  return m;
}

size_t Model::weight_bytes() const {
  // The embedding contributes one row per token; the output matrix (tied or not) is read whole.
  size_t total = output_norm.nbytes + output.nbytes + token_embd.row_stride();
  for (const auto& L : layers)
    total += L.attn_norm.nbytes + L.attn_q.nbytes + L.attn_k.nbytes + L.attn_v.nbytes + L.attn_output.nbytes +
             L.ffn_norm.nbytes + L.ffn_gate.nbytes + L.ffn_up.nbytes + L.ffn_down.nbytes + L.bq.nbytes + L.bk.nbytes +
             L.bv.nbytes + L.bo.nbytes + L.attn_q_norm.nbytes + L.attn_k_norm.nbytes + L.post_attn_norm.nbytes +
             L.post_ffn_norm.nbytes;
  return total;
}

}  // namespace minnow
