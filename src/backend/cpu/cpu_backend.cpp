// The CPU backend: the canonical decoder layer of model/layer_spec.h over a batch of tokens, reading the
// model's features and per-layer specs (never its architecture's name). Matrix products go through matmul()
// (batch invariant by contract); every other op works per token, so a sequence's results never depend on
// what else is in the batch.
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
        kv_(p_.n_layer, opt.n_seq_max, opt.n_ctx, p_.k_dim(), p_.v_dim(), ring_sizes(p_, opt.n_ctx)),
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

  int32_t seq_min_restart(int seq) const override {
    if (seq < 0 || seq >= opt_.n_seq_max) throw Error("sequence slot " + std::to_string(seq) + " out of range");
    return min_restart(seq_len_[static_cast<size_t>(seq)]);
  }

  void seq_clear(int seq) override {
    if (seq < 0 || seq >= opt_.n_seq_max) throw Error("sequence slot " + std::to_string(seq) + " out of range");
    seq_len_[static_cast<size_t>(seq)] = 0;
  }

  void forward(const Batch& batch, std::vector<float>& logits) override;

 private:
  void validate(const Batch& b);
  // Sliding-window layers keep a ring of window + kRewindSlack positions (fewer than n_ctx): enough for the
  // window, plus room to restart a slot a little before its end (the chat's prefix reuse).
  static constexpr int64_t kRewindSlack = 64;
  static std::vector<int64_t> ring_sizes(const ModelParams& p, int n_ctx) {
    std::vector<int64_t> cap;
    for (const LayerSpec& l : p.layer)
      cap.push_back(l.sliding_window > 0 ? std::min<int64_t>(n_ctx, l.sliding_window + kRewindSlack) : n_ctx);
    return cap;
  }
  // The earliest non-zero position a batch may restart a slot of length len at: every ring must still hold
  // the window before it ([k - window + 1, k - 1] within the ring's last cap positions [len - cap, len - 1]).
  int32_t min_restart(int32_t len) const {
    int64_t lo = 0;
    for (int64_t l = 0; l < p_.n_layer; ++l) {
      const int64_t w = p_.layer[static_cast<size_t>(l)].sliding_window, c = kv_.cap(l);
      if (w > 0 && c < opt_.n_ctx && len > c) lo = std::max(lo, len - c + w - 1);
    }
    return static_cast<int32_t>(std::min<int64_t>(lo, len));
  }
  // Row-wise norm of n_rows rows of d values (d = n_embd by default).
  void norm(const float* x, const float* w, float* y, int64_t n_rows, int64_t d = 0) {
    const bool ln = (breaks_ & kBreakLayerNorm) != 0;
    const float eps = static_cast<float>(p_.rms_eps);
    if (d == 0) d = p_.n_embd;
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
  // y[n][w.ne[1]] = x W (+ b when the bias is present)
  void mm_bias(const WeightView& w, const WeightView& b, const float* x, float* y, int64_t n) {
    mm(w, x, y, n);
    if (!b.data) return;
    const int64_t cols = w.ne[1];
    for (int64_t t = 0; t < n; ++t) add_row(y + t * cols, b.f32(), cols);
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
    if (last_in_batch[static_cast<size_t>(b.seq[i])] < 0 && b.pos[i] > 0 && b.pos[i] < nx &&
        b.pos[i] < min_restart(nx))
      throw Error("position " + std::to_string(b.pos[i]) + " of sequence " + std::to_string(b.seq[i]) +
                  ": the sliding-window cache no longer holds the positions before it (restart at " +
                  std::to_string(min_restart(nx)) + " or later, or at 0)");
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
  const ModelFeatures& F = p_.features;
  const int64_t d = p_.n_embd, hd = p_.head_dim_k, nh = p_.n_head, nkv = p_.n_head_kv, nrot = p_.n_rot;
  const int64_t qd = p_.q_dim(), kd = p_.k_dim(), vd = p_.v_dim(), ff = p_.n_ff, nv = p_.n_vocab;
  const int64_t group = p_.n_gqa();
  RopeMode rope_mode = F.rope == RopeStyle::NeoX ? RopeMode::NeoX : RopeMode::Normal;
  if (breaks_ & kBreakRopeHalfSplit) rope_mode = rope_mode == RopeMode::NeoX ? RopeMode::Normal : RopeMode::NeoX;

  std::vector<float> x(static_cast<size_t>(n * d));       // [n][n_embd] residual stream
  std::vector<float> cur(static_cast<size_t>(n * d));     // [n][n_embd] normed input
  std::vector<float> q(static_cast<size_t>(n * qd));      // [n][n_head * head_dim]
  std::vector<float> k(static_cast<size_t>(n * kd));      // [n][n_head_kv * head_dim]
  std::vector<float> v(static_cast<size_t>(n * vd));      // [n][n_head_kv * head_dim]
  std::vector<float> kqv(static_cast<size_t>(n * qd));    // [n][n_head * head_dim] attention result
  std::vector<float> attn(static_cast<size_t>(n * d));    // [n][n_embd] after the output projection
  std::vector<float> gate(static_cast<size_t>(n * ff));   // [n][n_ff]
  std::vector<float> up(static_cast<size_t>(n * ff));     // [n][n_ff]

  // Embedding lookup (scaled when the model says so).
  const float embd_scale = static_cast<float>(F.embd_scale);
  pool_.parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      float* row = x.data() + t * d;
      dequantize_row_ref(m_.token_embd.type, m_.token_embd.data + static_cast<size_t>(batch.tokens[t]) * m_.token_embd.row_stride(),
                         row, d);
      if (F.embd_scale != 1.0)
        for (int64_t i = 0; i < d; ++i) row[i] *= embd_scale;
    }
  });
  dump("inp_embd", x.data(), n, d);

  // RoPE (cos, sin) tables, one per distinct (base, scale) among the layers: [n][n_rot] each.
  // Frequency factors: the long ones (when the model has them) once the context exceeds the original one.
  const WeightView& fw = m_.rope_freqs_long.data && opt_.n_ctx > p_.n_ctx_orig ? m_.rope_freqs_long : m_.rope_freqs;
  const float* factors = fw.data ? fw.f32() : nullptr;
  const float mscale = static_cast<float>(F.rope_attn_factor);
  std::vector<std::pair<double, double>> rope_keys;
  std::vector<size_t> layer_table(static_cast<size_t>(p_.n_layer));
  for (int64_t l = 0; l < p_.n_layer; ++l) {
    const LayerSpec& ls = p_.layer[static_cast<size_t>(l)];
    const std::pair<double, double> key{ls.rope_freq_base, ls.rope_freq_scale};
    auto it = std::find(rope_keys.begin(), rope_keys.end(), key);
    if (it == rope_keys.end()) it = rope_keys.insert(rope_keys.end(), key);
    layer_table[static_cast<size_t>(l)] = static_cast<size_t>(it - rope_keys.begin());
  }
  std::vector<std::vector<float>> rope_cs(rope_keys.size(), std::vector<float>(static_cast<size_t>(n * nrot)));
  for (size_t r = 0; r < rope_keys.size(); ++r)
    for (int64_t t = 0; t < n; ++t) {
      const int32_t pos = (breaks_ & kBreakRopeFixedPos) ? 0 : batch.pos[t];
      rope_cos_sin(pos, nrot, rope_keys[r].first, rope_keys[r].second, factors, rope_cs[r].data() + t * nrot,
                   mscale);
    }
  const float scale = static_cast<float>(F.attn_scale);

  // Each slot's tokens in this batch: consecutive positions from first_pos, at batch rows rows_of.
  // Layers with a ring cache (sliding window, fewer than n_ctx positions kept) hold this batch's K/V in
  // kb/vb until their attention is done: a chunk may be longer than the ring.
  std::vector<int32_t> first_pos(static_cast<size_t>(opt_.n_seq_max), -1);
  std::vector<std::vector<int64_t>> rows_of(static_cast<size_t>(opt_.n_seq_max));
  for (int64_t t = 0; t < n; ++t) {
    const size_t sq = static_cast<size_t>(batch.seq[t]);
    if (first_pos[sq] < 0) first_pos[sq] = batch.pos[t];
    rows_of[sq].push_back(t);
  }
  std::vector<uint16_t> kb, vb;  // [n][kd], [n][vd] f16 (ring layers only)

  for (int64_t l = 0; l < p_.n_layer; ++l) {
    const LayerWeights& L = m_.layers[static_cast<size_t>(l)];
    const LayerSpec& spec = p_.layer[static_cast<size_t>(l)];
    const float* cs = rope_cs[layer_table[static_cast<size_t>(l)]].data();
    std::string sfx(1, '-');  // "-L"
    sfx += std::to_string(l);

    norm(x.data(), L.attn_norm.f32(), cur.data(), n);
    dump("attn_norm" + sfx, cur.data(), n, d);
    mm_bias(L.attn_q, L.bq, cur.data(), q.data(), n);
    mm_bias(L.attn_k, L.bk, cur.data(), k.data(), n);
    mm_bias(L.attn_v, L.bv, cur.data(), v.data(), n);
    if (F.qk_norm) {
      norm(q.data(), L.attn_q_norm.f32(), q.data(), n * nh, hd);
      norm(k.data(), L.attn_k_norm.f32(), k.data(), n * nkv, hd);
      dump("q_normed" + sfx, q.data(), n, qd);
      dump("k_normed" + sfx, k.data(), n, kd);
    }
    const bool ring = kv_.cap(l) < opt_.n_ctx;
    if (ring && kb.empty()) {
      kb.resize(static_cast<size_t>(n * kd));
      vb.resize(static_cast<size_t>(n * vd));
    }
    pool_.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        rope_apply(q.data() + t * qd, nh, hd, nrot, cs + t * nrot, rope_mode);
        rope_apply(k.data() + t * kd, nkv, hd, nrot, cs + t * nrot, rope_mode);
        uint16_t* kc = ring ? kb.data() + t * kd : kv_.k(l, batch.seq[t], batch.pos[t]);
        uint16_t* vc = ring ? vb.data() + t * vd : kv_.v(l, batch.seq[t], batch.pos[t]);
        for (int64_t i = 0; i < kd; ++i) kc[i] = fp32_to_fp16(k[t * kd + i]);
        for (int64_t i = 0; i < vd; ++i) vc[i] = fp32_to_fp16(v[t * vd + i]);
      }
    });
    dump("q" + sfx, q.data(), n, qd);
    dump("k_rope" + sfx, k.data(), n, kd);
    dump("v" + sfx, v.data(), n, vd);

    // Attention: one task per (token, query head); each reads its own sequence's cache over the positions
    // the layer sees: [0, pos], or (pos - window, pos] on a sliding-window layer.
    const bool gqa_wrong = (breaks_ & kBreakGqaOrder) != 0;
    // ignore_kv (negative control): a token attends only to its sequence's positions from this pass.
    std::vector<int32_t> pass_start(static_cast<size_t>(opt_.n_seq_max), 0);
    if (breaks_ & kBreakIgnoreKv)
      for (int64_t t = n - 1; t >= 0; --t) pass_start[static_cast<size_t>(batch.seq[t])] = batch.pos[t];
    std::vector<std::vector<float>> scratch(static_cast<size_t>(pool_.size()));
    // Tasks are dealt round-robin: later tokens attend over more positions, so contiguous chunks would
    // leave the first threads idle.
    const int n_th = pool_.size();
    const int64_t window = spec.sliding_window;
    if (!ring) {
      pool_.run([&](int th) {
        std::vector<float>& sc = scratch[static_cast<size_t>(th)];
        for (int64_t task = th; task < n * nh; task += n_th) {
          const int64_t t = task / nh, h = task % nh;
          const int64_t kvh = gqa_wrong ? h % nkv : h / group;
          const int64_t first = std::max<int64_t>(window > 0 ? std::max<int64_t>(0, batch.pos[t] - window + 1) : 0,
                                                   pass_start[static_cast<size_t>(batch.seq[t])]);
          const int64_t n_kv = batch.pos[t] + 1 - first;
          if (static_cast<int64_t>(sc.size()) < n_kv) sc.resize(static_cast<size_t>(n_kv));
          attention_head(q.data() + t * qd + h * hd, kv_.k(l, batch.seq[t], first) + kvh * hd,
                         kv_.v(l, batch.seq[t], first) + kvh * hd, n_kv, hd, kv_.k_dim(), scale, sc.data(),
                         kqv.data() + t * qd + h * hd);
        }
      });
    } else {
      // The positions a token sees are gathered into one contiguous block (older ones from the ring, this
      // batch's from kb/vb), so attention_head computes exactly what it computes on a full cache.
      std::vector<std::vector<uint16_t>> gk(static_cast<size_t>(n_th)), gv(static_cast<size_t>(n_th));
      pool_.run([&](int th) {
        std::vector<float>& sc = scratch[static_cast<size_t>(th)];
        std::vector<uint16_t>& K = gk[static_cast<size_t>(th)];
        std::vector<uint16_t>& V = gv[static_cast<size_t>(th)];
        for (int64_t t = th; t < n; t += n_th) {
          const int32_t sq = batch.seq[t], fp = first_pos[static_cast<size_t>(sq)];
          const int64_t first = std::max<int64_t>(window > 0 ? std::max<int64_t>(0, batch.pos[t] - window + 1) : 0,
                                                   pass_start[static_cast<size_t>(batch.seq[t])]);
          const int64_t n_kv = batch.pos[t] + 1 - first;
          if (static_cast<int64_t>(sc.size()) < n_kv) sc.resize(static_cast<size_t>(n_kv));
          K.resize(static_cast<size_t>(n_kv * kd));
          V.resize(static_cast<size_t>(n_kv * kd));
          for (int64_t pq = first; pq <= batch.pos[t]; ++pq) {
            const int64_t row = pq < fp ? -1 : rows_of[static_cast<size_t>(sq)][static_cast<size_t>(pq - fp)];
            const uint16_t* ks = row < 0 ? kv_.k(l, sq, pq) : kb.data() + row * kd;
            const uint16_t* vs = row < 0 ? kv_.v(l, sq, pq) : vb.data() + row * vd;
            std::copy_n(ks, kd, K.data() + (pq - first) * kd);
            std::copy_n(vs, vd, V.data() + (pq - first) * kd);
          }
          for (int64_t h = 0; h < nh; ++h) {
            const int64_t kvh = gqa_wrong ? h % nkv : h / group;
            attention_head(q.data() + t * qd + h * hd, K.data() + kvh * hd, V.data() + kvh * hd, n_kv, hd, kd, scale,
                           sc.data(), kqv.data() + t * qd + h * hd);
          }
        }
      });
      // Then the ring keeps each slot's last cap positions of this batch.
      const int64_t cap = kv_.cap(l);
      pool_.parallel_for(n, [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) {
          const size_t sq = static_cast<size_t>(batch.seq[t]);
          const int64_t last = first_pos[sq] + static_cast<int64_t>(rows_of[sq].size()) - 1;
          if (batch.pos[t] <= last - cap) continue;
          std::copy_n(kb.data() + t * kd, kd, kv_.k(l, batch.seq[t], batch.pos[t]));
          std::copy_n(vb.data() + t * vd, vd, kv_.v(l, batch.seq[t], batch.pos[t]));
        }
      });
    }
    dump("kqv" + sfx, kqv.data(), n, qd);
    mm_bias(L.attn_output, L.bo, kqv.data(), attn.data(), n);
    dump("attn_out" + sfx, attn.data(), n, d);
    if (F.post_attn_norm) {
      norm(attn.data(), L.post_attn_norm.f32(), attn.data(), n);
      dump("attn_post_norm" + sfx, attn.data(), n, d);
    }
    for (int64_t i = 0; i < n * d; ++i) x[i] += attn[i];  // x is now ffn_inp
    dump("ffn_inp" + sfx, x.data(), n, d);

    norm(x.data(), L.ffn_norm.f32(), cur.data(), n);
    dump("ffn_norm" + sfx, cur.data(), n, d);
    mm(L.ffn_gate, cur.data(), gate.data(), n);
    mm(L.ffn_up, cur.data(), up.data(), n);
    const bool gelu = F.act == GatedAct::GeluTanh;
    pool_.parallel_for(n, [&](int64_t b, int64_t e, int) {
      for (int64_t t = b; t < e; ++t) {
        if (gelu) geglu_tanh_row(gate.data() + t * ff, up.data() + t * ff, gate.data() + t * ff, ff);
        else swiglu_row(gate.data() + t * ff, up.data() + t * ff, gate.data() + t * ff, ff);
      }
    });
    mm(L.ffn_down, gate.data(), attn.data(), n);
    dump("ffn_out" + sfx, attn.data(), n, d);
    if (F.post_ffn_norm) {
      norm(attn.data(), L.post_ffn_norm.f32(), attn.data(), n);
      dump("ffn_post_norm" + sfx, attn.data(), n, d);
    }
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
    if (F.final_logit_softcap > 0) {
      dump("logits_uncapped", logits.data() + off, nr, nv);
      for (int64_t r = 0; r < nr; ++r)
        softcap_row(logits.data() + off + static_cast<size_t>(r * nv), nv, static_cast<float>(F.final_logit_softcap));
    }
    dump("logits", logits.data() + off, nr, nv);
  }
  ++forward_calls_;
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const Model& model, const BackendOptions& opt) {
  return std::make_unique<CpuBackend>(model, opt);
}

}  // namespace minnow
