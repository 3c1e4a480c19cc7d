// The CPU backend: a straightforward llama forward pass over a batch of tokens. Matrix products go through
// matmul() (batch invariant by contract); every other op works per token, so a sequence's results never
// depend on what else is in the batch.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <thread>

#include "backend/backend.h"
#include "backend/cpu/debug_break.h"
#include "backend/cpu/kv_cache.h"
#include "backend/cpu/matmul.h"
#include "backend/cpu/ops.h"
#include "common/error.h"
#include "common/npy.h"
#include "common/thread_pool.h"
#include "model/model.h"
#include "quant/quant_ref.h"

namespace minnow {

namespace {

int resolve_threads(int n) {
  if (n > 0) return n;
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

// Deliberately wrong normalisation for the layernorm negative control: (x - mean) / sqrt(var + eps) * w.
void layernorm_row(const float* x, const float* w, float* y, int64_t n, float eps) {
  double mean = 0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  double var = 0;
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(n);
  const double s = 1.0 / std::sqrt(var + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>((x[i] - mean) * s) * w[i];
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(const Model& model, const BackendOptions& opt)
      : m_(model),
        p_(model.params()),
        opt_(opt),
        pool_(resolve_threads(opt.n_threads)),
        breaks_(debug_break_from_env()),
        kv_(p_.n_layer, opt.n_seq_max, opt.n_ctx, p_.k_dim(), p_.v_dim()),
        seq_len_(static_cast<size_t>(opt.n_seq_max), 0) {
    if (opt.n_ctx <= 0) throw Error("context size must be positive");
    if (opt.n_seq_max <= 0) throw Error("number of sequence slots must be positive");
    std::fprintf(stderr, "cpu: %d threads, KV cache %.2f MiB (f16, n_ctx = %d, %d slot%s)\n", pool_.size(),
                 static_cast<double>(kv_.bytes()) / (1024.0 * 1024.0), opt.n_ctx, opt.n_seq_max,
                 opt.n_seq_max == 1 ? "" : "s");
  }

  std::string name() const override { return "cpu"; }
  size_t kv_cache_bytes() const override { return kv_.bytes(); }
  size_t weight_bytes() const override { return m_.weight_bytes(); }

  void seq_clear(int seq) override {
    if (seq < 0 || seq >= opt_.n_seq_max) throw Error("sequence slot " + std::to_string(seq) + " out of range");
    seq_len_[static_cast<size_t>(seq)] = 0;
  }

  void forward(const Batch& batch, std::vector<float>& logits) override;

 private:
  void validate(const Batch& b);
  void norm(const float* x, const float* w, float* y, int64_t n_rows) {
    const bool ln = (breaks_ & kBreakLayerNorm) != 0;
    const float eps = static_cast<float>(p_.rms_eps);
    const int64_t d = p_.n_embd;
    pool_.parallel_for(n_rows, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        if (ln) layernorm_row(x + t * d, w, y + t * d, d, eps);
        else rmsnorm_row(x + t * d, w, y + t * d, d, eps);
      }
    });
  }
  void mm(const WeightView& w, const float* x, float* y, int64_t n) {
    matmul(w.type, w.data, w.ne[0], w.ne[1], x, y, n, pool_);
  }
  void dump(const std::string& name, const float* data, int64_t rows, int64_t cols) {
    if (opt_.dump_dir.empty()) return;
    std::string file = opt_.dump_dir + "/" + name;
    if (forward_calls_ > 0) file += ".call" + std::to_string(forward_calls_);
    write_npy_f32(file + ".npy", data, {rows, cols});
  }

  const Model& m_;
  const ModelParams& p_;
  BackendOptions opt_;
  ThreadPool pool_;
  uint32_t breaks_;
  KvCache kv_;
  std::vector<int32_t> seq_len_;  // [n_seq_max] positions held in each slot
  int forward_calls_ = 0;
};

void CpuBackend::validate(const Batch& b) {
  const size_t n = b.tokens.size();
  if (b.pos.size() != n || b.seq.size() != n || b.want_logits.size() != n)
    throw Error("malformed batch: field sizes differ");
  std::vector<int32_t> next = seq_len_;  // the next position each slot may take
  std::vector<int32_t> last_in_batch(seq_len_.size(), -1);
  for (size_t i = 0; i < n; ++i) {
    if (b.tokens[i] < 0 || b.tokens[i] >= p_.n_vocab)
      throw Error("token id " + std::to_string(b.tokens[i]) + " out of range [0, " + std::to_string(p_.n_vocab) + ")");
    if (b.seq[i] < 0 || b.seq[i] >= opt_.n_seq_max)
      throw Error("sequence slot " + std::to_string(b.seq[i]) + " out of range");
    if (b.pos[i] < 0 || b.pos[i] >= opt_.n_ctx)
      throw Error("position " + std::to_string(b.pos[i]) + " exceeds the context size (" + std::to_string(opt_.n_ctx) + ")");
    int32_t& nx = next[static_cast<size_t>(b.seq[i])];
    if (b.pos[i] > nx)
      throw Error("position " + std::to_string(b.pos[i]) + " of sequence " + std::to_string(b.seq[i]) +
                  " leaves a gap (next position is " + std::to_string(nx) + ")");
    // Within the batch a sequence's positions must strictly increase; re-using an earlier position
    // (first token of the batch only) overwrites the cache from there on.
    int32_t& last = last_in_batch[static_cast<size_t>(b.seq[i])];
    if (b.pos[i] <= last)
      throw Error("positions of sequence " + std::to_string(b.seq[i]) + " do not increase within the batch");
    last = b.pos[i];
    nx = b.pos[i] + 1;
  }
}

void CpuBackend::forward(const Batch& batch, std::vector<float>& logits) {
  const int64_t n = static_cast<int64_t>(batch.size());
  if (n == 0) return;
  validate(batch);
  const int64_t d = p_.n_embd, hd = p_.head_dim_k, nh = p_.n_head, nkv = p_.n_head_kv;
  const int64_t qd = p_.q_dim(), kd = p_.k_dim(), vd = p_.v_dim(), ff = p_.n_ff, nv = p_.n_vocab;
  const int64_t group = p_.n_gqa();
  const RopeMode rope_mode = (breaks_ & kBreakRopeHalfSplit) ? RopeMode::NeoX : RopeMode::Normal;

  std::vector<float> x(static_cast<size_t>(n * d));       // [n][n_embd] residual stream
  std::vector<float> cur(static_cast<size_t>(n * d));     // [n][n_embd] normed input
  std::vector<float> q(static_cast<size_t>(n * qd));      // [n][n_head * head_dim]
  std::vector<float> k(static_cast<size_t>(n * kd));      // [n][n_head_kv * head_dim]
  std::vector<float> v(static_cast<size_t>(n * vd));      // [n][n_head_kv * head_dim]
  std::vector<float> kqv(static_cast<size_t>(n * qd));    // [n][n_head * head_dim] attention result
  std::vector<float> attn(static_cast<size_t>(n * d));    // [n][n_embd] after the output projection
  std::vector<float> gate(static_cast<size_t>(n * ff));   // [n][n_ff]
  std::vector<float> up(static_cast<size_t>(n * ff));     // [n][n_ff]
  std::vector<float> rope_cs(static_cast<size_t>(n * p_.n_rot));  // [n][n_rot] (cos, sin) pairs

  // Embedding lookup.
  pool_.parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t)
      dequantize_row_ref(m_.token_embd.type, m_.token_embd.data + static_cast<size_t>(batch.tokens[t]) * m_.token_embd.row_stride(),
                         x.data() + t * d, d);
  });
  dump("inp_embd", x.data(), n, d);
  for (int64_t t = 0; t < n; ++t) {
    const int32_t pos = (breaks_ & kBreakRopeFixedPos) ? 0 : batch.pos[t];
    rope_cos_sin(pos, p_.n_rot, p_.rope_freq_base, p_.rope_freq_scale, rope_cs.data() + t * p_.n_rot);
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));

  for (int64_t l = 0; l < p_.n_layer; ++l) {
    const LayerWeights& L = m_.layers[static_cast<size_t>(l)];
    std::string sfx(1, '-');  // "-L"
    sfx += std::to_string(l);

    norm(x.data(), L.attn_norm.f32(), cur.data(), n);
    dump("attn_norm" + sfx, cur.data(), n, d);
    mm(L.attn_q, cur.data(), q.data(), n);
    mm(L.attn_k, cur.data(), k.data(), n);
    mm(L.attn_v, cur.data(), v.data(), n);
    pool_.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        rope_apply(q.data() + t * qd, nh, hd, p_.n_rot, rope_cs.data() + t * p_.n_rot, rope_mode);
        rope_apply(k.data() + t * kd, nkv, hd, p_.n_rot, rope_cs.data() + t * p_.n_rot, rope_mode);
        uint16_t* kc = kv_.k(l, batch.seq[t], batch.pos[t]);
        uint16_t* vc = kv_.v(l, batch.seq[t], batch.pos[t]);
        for (int64_t i = 0; i < kd; ++i) kc[i] = fp32_to_fp16(k[t * kd + i]);
        for (int64_t i = 0; i < vd; ++i) vc[i] = fp32_to_fp16(v[t * vd + i]);
      }
    });
    dump("q" + sfx, q.data(), n, qd);
    dump("k_rope" + sfx, k.data(), n, kd);
    dump("v" + sfx, v.data(), n, vd);

    // Attention: one task per (token, query head); each reads its own sequence's cache [0, pos].
    const bool gqa_wrong = (breaks_ & kBreakGqaOrder) != 0;
    // ignore_kv (negative control): a token attends only to its sequence's positions from this pass.
    std::vector<int32_t> pass_start(static_cast<size_t>(opt_.n_seq_max), 0);
    if (breaks_ & kBreakIgnoreKv)
      for (int64_t t = n - 1; t >= 0; --t) pass_start[static_cast<size_t>(batch.seq[t])] = batch.pos[t];
    std::vector<std::vector<float>> scratch(static_cast<size_t>(pool_.size()));
    // Tasks are dealt round-robin: later tokens attend over more positions, so contiguous chunks would
    // leave the first threads idle.
    const int n_th = pool_.size();
    pool_.run([&](int th) {
      std::vector<float>& sc = scratch[static_cast<size_t>(th)];
      for (int64_t task = th; task < n * nh; task += n_th) {
        const int64_t t = task / nh, h = task % nh;
        const int64_t kvh = gqa_wrong ? h % nkv : h / group;
        const int32_t kv0 = pass_start[static_cast<size_t>(batch.seq[t])];
        const int64_t n_kv = batch.pos[t] + 1 - kv0;
        if (static_cast<int64_t>(sc.size()) < n_kv) sc.resize(static_cast<size_t>(n_kv));
        attention_head(q.data() + t * qd + h * hd, kv_.k(l, batch.seq[t], kv0) + kvh * hd,
                       kv_.v(l, batch.seq[t], kv0) + kvh * hd, n_kv, hd, kv_.k_dim(), scale, sc.data(),
                       kqv.data() + t * qd + h * hd);
      }
    });
    dump("kqv" + sfx, kqv.data(), n, qd);
    mm(L.attn_output, kqv.data(), attn.data(), n);
    dump("attn_out" + sfx, attn.data(), n, d);
    for (int64_t i = 0; i < n * d; ++i) x[i] += attn[i];  // x is now ffn_inp
    dump("ffn_inp" + sfx, x.data(), n, d);

    norm(x.data(), L.ffn_norm.f32(), cur.data(), n);
    dump("ffn_norm" + sfx, cur.data(), n, d);
    mm(L.ffn_gate, cur.data(), gate.data(), n);
    mm(L.ffn_up, cur.data(), up.data(), n);
    pool_.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) swiglu_row(gate.data() + t * ff, up.data() + t * ff, gate.data() + t * ff, ff);
    });
    mm(L.ffn_down, gate.data(), attn.data(), n);
    dump("ffn_out" + sfx, attn.data(), n, d);
    for (int64_t i = 0; i < n * d; ++i) x[i] += attn[i];
    dump("l_out" + sfx, x.data(), n, d);
  }

  // Commit the cache lengths only once the pass has succeeded.
  for (int64_t t = 0; t < n; ++t) seq_len_[static_cast<size_t>(batch.seq[t])] = batch.pos[t] + 1;

  // Final norm and output projection for the rows that want logits.
  std::vector<int64_t> rows;
  for (int64_t t = 0; t < n; ++t)
    if (batch.want_logits[t]) rows.push_back(t);
  const int64_t nr = static_cast<int64_t>(rows.size());
  if (nr > 0) {
    std::vector<float> sel(static_cast<size_t>(nr * d));  // [nr][n_embd]
    for (int64_t r = 0; r < nr; ++r) std::copy_n(x.data() + rows[r] * d, d, sel.data() + r * d);
    norm(sel.data(), m_.output_norm.f32(), sel.data(), nr);
    dump("result_norm", sel.data(), nr, d);
    const size_t off = logits.size();
    logits.resize(off + static_cast<size_t>(nr * nv));
    mm(m_.output, sel.data(), logits.data() + off, nr);
    dump("logits", logits.data() + off, nr, nv);
  }
  ++forward_calls_;
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const Model& model, const BackendOptions& opt) {
  return std::make_unique<CpuBackend>(model, opt);
}

}  // namespace minnow
