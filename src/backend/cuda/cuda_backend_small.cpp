// CudaBackend's small-batch path (at most kSmallBatch tokens): the mat-vec arguments of every layer
// (layer_stages) with their optional L2 prefetch (add_pf), the output mat-vec, and the two ways of launching
// them: one CUDA graph per batch shape (launch_graph of enqueue_small) or the opt-in persistent kernel
// (launch_persistent).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_kernels.h"
#include "common/error.h"

namespace minnow::cuda_impl {

void CudaBackend::add_pf(cuda::MatvecArgs& a, const DevMat& m, size_t off, size_t max) const {
  if (!prefetch_ || !m.d || (prefetch_ == 2 && m.d != out_.d)) return;
  const size_t total = mat_bytes(m);
  if (off >= total) return;
  for (int i = 0; i < 3; ++i) {
    if (a.d_pf[i]) continue;
    a.d_pf[i] = static_cast<const uint8_t*>(m.d) + off;
    a.pf_bytes[i] = std::min(total - off, max);
    return;
  }
}

cuda::MvMat CudaBackend::mv(const DevMat& m, float* y, int ldy) {
  cuda::MvMat r;
  r.d_w = m.d;
  r.type = m.type;
  r.n_out = m.n_out;
  r.d_y = y;
  r.ldy = ldy;
  return r;
}

std::vector<cuda::DecodeStage> CudaBackend::layer_stages(int nt) const {
  const int E = int(p_.n_embd);
  const float eps = float(p_.rms_eps);
  std::vector<cuda::DecodeStage> st;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const DevLayer& L = layers_[l];
    cuda::DecodeStage s;
    cuda::MatvecArgs& a = s.mv;
    a.m[0] = mv(L.q, d_q_, int(p_.q_dim()));
    a.m[1] = mv(L.k, d_k_, int(p_.k_dim()));
    a.m[2] = mv(L.v, d_v_, int(p_.v_dim()));
    a.n_mats = 3;
    a.n_in = E;
    a.d_x = d_x_;
    a.ldx = E;
    a.nb = nt;
    a.d_norm = L.attn_norm;
    a.eps = eps;
    a.mode = cuda::MvMode::QkvRope;
    a.d_pos = d_pos();
    a.d_seq = d_seq();
    a.head_dim = int(p_.head_dim_k);
    a.n_rot = int(p_.n_rot);
    a.freq_base = float(p_.rope_freq_base);
    a.freq_scale = float(p_.rope_freq_scale);
    a.d_kcache = kcache(int(l));
    a.d_vcache = vcache(int(l));
    a.n_ctx = n_ctx_;
    a.d_rope = d_rope_;
    st.push_back(s);
    cuda::DecodeStage at;
    at.attention = true;
    at.at = attn_args(int(l), 0, nt);
    st.push_back(at);
    cuda::DecodeStage o;
    o.mv.m[0] = mv(L.o, d_x_, E);
    o.mv.n_in = L.o.n_in;
    o.mv.d_x = d_att_;
    o.mv.ldx = int(p_.q_dim());
    o.mv.nb = nt;
    o.mv.mode = cuda::MvMode::Add;
    st.push_back(o);
    cuda::DecodeStage f;
    f.mv.m[0] = mv(L.gate, d_g_, int(p_.n_ff));
    f.mv.m[1] = mv(L.up, nullptr, int(p_.n_ff));
    f.mv.n_mats = 2;
    f.mv.n_in = E;
    f.mv.d_x = d_x_;
    f.mv.ldx = E;
    f.mv.nb = nt;
    f.mv.d_norm = L.ffn_norm;
    f.mv.eps = eps;
    f.mv.mode = cuda::MvMode::SwiGLU;
    f.mv.d_q8_out = d_q8_;
    f.mv.q8_tokens = d_q8_ ? kSmallBatch : 0;
    st.push_back(f);
    cuda::DecodeStage d;
    d.mv.m[0] = mv(L.down, d_x_, E);
    d.mv.n_in = L.down.n_in;
    d.mv.d_x = d_g_;
    d.mv.ldx = int(p_.n_ff);
    d.mv.nb = nt;
    d.mv.mode = cuda::MvMode::Add;
    d.mv.d_q8_in = d_q8_;
    d.mv.q8_tokens = d_q8_ ? kSmallBatch : 0;
    st.push_back(d);
  }
  return st;
}

void CudaBackend::enqueue_output(int nt, int n_out) {
  if (n_out <= 0) return;
  // With all rows wanted the output mat-vec reads d_x_ directly (one kernel less, and its weight copy overlaps
  // the last down kernel); the v11 path always gathers.
  output_matvec(output_rows(nt, n_out, v11_), n_out);
}

const float* CudaBackend::output_rows(int nt, int n_out, bool always_gather) {
  if (n_out == nt && !always_gather) return d_x_;
  cuda::gather_rows(d_x_, int(p_.n_embd), d_outidx(), n_out, d_sel_, stream_);
  return d_sel_;
}

void CudaBackend::output_matvec(const float* xs, int n_out) {
  const int E = int(p_.n_embd);
  cuda::MatvecArgs a;
  a.m[0] = mv(out_, d_logits_, int(p_.n_vocab));
  a.n_in = E;
  a.d_x = xs;
  a.ldx = E;
  a.nb = n_out;
  a.d_norm = out_norm_;
  a.eps = float(p_.rms_eps);
  a.d_trace = ktrace_slot("output");
  cuda::matvec(a, stream_);
}

void CudaBackend::enqueue_small(int nt, int n_out) {
  cuda::get_rows(embd_.type, embd_.d, int(p_.n_embd), d_tokens(), nt, d_x_, stream_);
  std::vector<cuda::DecodeStage> st = layer_stages(nt);
  std::vector<cuda::MatvecArgs*> mvs;
  for (auto& s : st)
    if (!s.attention) mvs.push_back(&s.mv);
  for (size_t i = 0; i < mvs.size(); ++i) {
    if (i + 2 < mvs.size()) {
      const cuda::MatvecArgs& t = *mvs[i + 2];
      for (int k = 0; k < t.n_mats; ++k) add_pf(*mvs[i], DevMat{t.m[k].d_w, t.m[k].type, t.n_in, t.m[k].n_out});
    } else if (n_out > 0) {
      add_pf(*mvs[i], out_, (i + 2 - mvs.size()) * kPfOut, kPfOut);
    }
  }
  static const char* kinds[5] = {"qkv", "attention", "attn_output", "gate+up", "down"};
  for (size_t i = 0; i < st.size(); ++i) {
    cuda::DecodeStage& s = st[i];
    std::string label = "L";  // (built step by step: g++ 12 warns falsely on a chain of + here)
    label += std::to_string(i / 5);
    label += ' ';
    label += kinds[i % 5];
    if (s.attention) {
      s.at.d_trace = ktrace_slot(label);
      cuda::attention(s.at, stream_);
    } else {
      s.mv.d_trace = ktrace_slot(label);
      cuda::matvec(s.mv, stream_);
    }
  }
  enqueue_output(nt, n_out);
}

unsigned long long* CudaBackend::ktrace_slot(const std::string& label) {
  if (!kt_capturing_) return nullptr;
  const size_t slot = ktrace_label_.size();
  if (!d_ktrace_ || slot >= size_t(5 * p_.n_layer + 2)) return nullptr;
  ktrace_label_.push_back(label);
  return d_ktrace_ + 3 * slot;
}

void CudaBackend::ktrace_collect() {
  const size_t n = ktrace_label_.size();
  if (n == 0) return;
  std::vector<unsigned long long> t(3 * n);
  check(cudaMemcpy(t.data(), d_ktrace_, t.size() * sizeof(t[0]), cudaMemcpyDeviceToHost), "trace copy");
  if (kt_skip_ > 0) {
    --kt_skip_;
    return;
  }
  kt_gap_.resize(n, 0.0);
  kt_work_.resize(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const double past_wait = double(~t[3 * i + 1]), end = double(t[3 * i + 2]);
    const double prev_end = i > 0 ? double(t[3 * i - 1]) : double(~t[0]);
    kt_gap_[i] += (past_wait - prev_end) / 1e3;
    kt_work_[i] += (end - past_wait) / 1e3;
  }
  kt_total_ += (double(t[3 * n - 1]) - double(~t[0])) / 1e3;
  ++kt_n_;
}

bool CudaBackend::launch_persistent(int nt, int n_out) {
  if (!persistent_ || nt > 8) return false;
  auto it = plans_.find(nt);
  if (it == plans_.end()) {
    std::unique_ptr<cuda::DecodePlan> plan;
    try {
      plan = std::make_unique<cuda::DecodePlan>(layer_stages(nt), nt);
    } catch (const Error& e) {
      if (!persistent_warned_) std::fprintf(stderr, "cuda: persistent decode not used: %s\n", e.what());
      persistent_warned_ = true;
    }
    it = plans_.emplace(nt, std::move(plan)).first;
  }
  if (!it->second) return false;
  cuda::get_rows(embd_.type, embd_.d, int(p_.n_embd), d_tokens(), nt, d_x_, stream_);
  it->second->launch(stream_);
  enqueue_output(nt, n_out);
  return true;
}

void CudaBackend::launch_graph(int nt, int n_out) {
  const int key = nt * (kSmallBatch + 1) + n_out;
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    cudaGraph_t g = nullptr;
    kt_capturing_ = ktrace_ && kt_key_ < 0 && nt == 1 && n_out == 1;
    if (kt_capturing_) kt_key_ = key;
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
    try {
      enqueue_small(nt, n_out);
      kt_capturing_ = false;
    } catch (...) {
      kt_capturing_ = false;
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
      throw;
    }
    check(cudaStreamEndCapture(stream_, &g), "end capture");
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    check(e, "graph instantiate");
    it = graphs_.emplace(key, exec).first;
  }
  if (key == kt_key_ && !ktrace_label_.empty()) {
    check(cudaMemsetAsync(d_ktrace_, 0, sizeof(unsigned long long) * 3 * ktrace_label_.size(), stream_), "cudaMemset");
    kt_pending_ = true;
  }
  check(cudaGraphLaunch(it->second, stream_), "graph launch");
}

}  // namespace minnow::cuda_impl
