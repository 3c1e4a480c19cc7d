// Profiler: the CUDA backend's developer measurements (see cuda_profile.h).
#include "backend/cuda/cuda_profile.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "backend/cuda/cuda_kernels.h"

namespace minnow::cuda_impl {

using cuda::check;

namespace {
int env_int(const char* name, int def) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : def;
}
}  // namespace

Profiler::Profiler(cudaStream_t stream, int trace_slots) : stream_(stream), trace_slots_(trace_slots) {
  prof_ = env_int("MINNOW_CUDA_PROFILE", 0) > 0;
  prof_every_ = std::max(1, env_int("MINNOW_CUDA_PROFILE_EVERY", 100));
  prof_skip_ = std::max(0, env_int("MINNOW_CUDA_PROFILE_SKIP", 2));
  if (const char* e = std::getenv("MINNOW_CUDA_TRACE")) trace_ = std::string(e) == "1";
  if (trace_) {
    void* p = nullptr;
    check(cudaMalloc(&p, sizeof(unsigned long long) * 3 * size_t(trace_slots_)), "cudaMalloc");
    d_trace_ = static_cast<unsigned long long*>(p);
  }
}

Profiler::~Profiler() {
  print();
  for (cudaEvent_t e : ev_) cudaEventDestroy(e);
  for (cudaEvent_t e : small_ev_)
    if (e) cudaEventDestroy(e);
  if (d_trace_) cudaFree(d_trace_);
}

double Profiler::host_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Profiler::mark(int phase) {
  if (!prof_) return;
  if (used_ == ev_.size()) {
    cudaEvent_t e = nullptr;
    check(cudaEventCreate(&e), "cudaEventCreate");
    ev_.push_back(e);
    ev_phase_.push_back(0);
  }
  check(cudaEventRecord(ev_[used_], stream_), "cudaEventRecord");
  ev_phase_[used_++] = phase;
}

void Profiler::finish(int nt, int n_out) {
  if (!prof_ || used_ < 2) return;
  check(cudaEventSynchronize(ev_[used_ - 1]), "cudaEventSynchronize");
  if (prof_skip_ > 0) {  // warm-up passes (cuBLAS kernel loading) are left out
    --prof_skip_;
    used_ = 0;
    return;
  }
  for (size_t i = 1; i < used_; ++i) {
    float ms = 0.f;
    check(cudaEventElapsedTime(&ms, ev_[i - 1], ev_[i]), "cudaEventElapsedTime");
    ms_[ev_phase_[i]] += ms;
  }
  used_ = 0;
  ++prof_passes_;
  prof_tokens_ += nt;
  prof_outs_ += n_out;
  if (prof_passes_ % prof_every_ == 0) print();
}

void Profiler::small_event(int i) {
  if (!small_ev_[i]) check(cudaEventCreate(&small_ev_[i]), "cudaEventCreate");
  check(cudaEventRecord(small_ev_[i], stream_), "cudaEventRecord");
}

void Profiler::small_done(double wall_ms) {
  if (small_skip_ > 0) {
    --small_skip_;
    return;
  }
  float ms = 0.f;
  check(cudaEventElapsedTime(&ms, small_ev_[0], small_ev_[1]), "cudaEventElapsedTime");
  small_gpu_ms_ += ms;
  small_wall_ms_ += wall_ms;
  ++small_passes_;
}

void Profiler::capture_begin(int nt, int n_out, int key) {
  capturing_ = trace_ && key_ < 0 && nt == 1 && n_out == 1;
  if (capturing_) key_ = key;
}

unsigned long long* Profiler::slot(const std::string& label) {
  if (!capturing_) return nullptr;
  const size_t s = label_.size();
  if (!d_trace_ || s >= size_t(trace_slots_)) return nullptr;
  label_.push_back(label);
  return d_trace_ + 3 * s;
}

void Profiler::before_launch(int key) {
  if (key != key_ || label_.empty()) return;
  check(cudaMemsetAsync(d_trace_, 0, sizeof(unsigned long long) * 3 * label_.size(), stream_), "cudaMemset");
  pending_ = true;
}

void Profiler::after_pass() {
  if (!pending_) return;
  pending_ = false;
  const size_t n = label_.size();
  std::vector<unsigned long long> t(3 * n);
  check(cudaMemcpy(t.data(), d_trace_, t.size() * sizeof(t[0]), cudaMemcpyDeviceToHost), "trace copy");
  if (skip_ > 0) {
    --skip_;
    return;
  }
  gap_.resize(n, 0.0);
  work_.resize(n, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const double past_wait = double(~t[3 * i + 1]), end = double(t[3 * i + 2]);
    const double prev_end = i > 0 ? double(t[3 * i - 1]) : double(~t[0]);
    gap_[i] += (past_wait - prev_end) / 1e3;
    work_[i] += (end - past_wait) / 1e3;
  }
  total_ += (double(t[3 * n - 1]) - double(~t[0])) / 1e3;
  ++n_;
}

void Profiler::print() const {
  if (n_ > 0) {
    const double n = double(n_);
    std::map<std::string, std::array<double, 3>> kinds;  // kind -> gap, work, count
    for (size_t i = 0; i < label_.size() && i < gap_.size(); ++i) {
      const std::string& l = label_[i];
      const std::string kind = l.find(' ') == std::string::npos ? l : l.substr(l.find(' ') + 1);
      auto& k = kinds[kind];
      k[0] += gap_[i] / n;
      k[1] += work_[i] / n;
      k[2] += 1;
    }
    std::fprintf(stderr, "cuda trace: %ld single-token passes, first kernel start -> last kernel end %.1f us\n", n_,
                 total_ / n);
    double sum_gap = 0, sum_work = 0;
    for (const auto& [kind, k] : kinds) {
      std::fprintf(stderr, "cuda trace: %-12s x%-3.0f hand-over %6.2f us, work %6.2f us (per launch)\n", kind.c_str(),
                   k[2], k[0] / k[2], k[1] / k[2]);
      sum_gap += k[0];
      sum_work += k[1];
    }
    std::fprintf(stderr, "cuda trace: sums per pass: hand-overs %.1f us, work %.1f us\n", sum_gap, sum_work);
  }
  if (prof_ && small_passes_ > 0)
    std::fprintf(stderr, "cuda profile: %ld small passes: GPU (upload + graph) %.1f us, host wall per pass %.1f us\n",
                 small_passes_, 1e3 * small_gpu_ms_ / double(small_passes_),
                 1e3 * small_wall_ms_ / double(small_passes_));
  if (!prof_ || prof_passes_ == 0) return;
  static const char* names[kPhases] = {"other", "dequant", "qkv", "o", "gate+up", "down", "rope",
                                       "attention", "output", "out.other"};
  const double n = double(prof_passes_);
  double total = 0;
  for (double v : ms_) total += v;
  const char* path = std::getenv("MINNOW_CUDA_PROFILE_FILE");  // append there instead of stderr
  FILE* f = path && *path ? std::fopen(path, "a") : nullptr;
  FILE* out = f ? f : stderr;
  std::fprintf(out, "cuda profile: %ld large passes, %.1f tokens and %.1f logits rows per pass; GPU %.3f ms per pass:",
               prof_passes_, double(prof_tokens_) / n, double(prof_outs_) / n, total / n);
  for (int i = 0; i < kPhases; ++i)
    if (ms_[i] > 0) std::fprintf(out, " %s %.3f", names[i], ms_[i] / n);
  std::fprintf(out, "; host logits download+copy %.3f ms per pass\n", prof_host_ms_ / n);
  if (f) std::fclose(f);
}

}  // namespace minnow::cuda_impl
