#pragma once
// Developer measurements of the CUDA backend, all off by default (docs/cuda_notes.md, "Environment knobs"):
// - MINNOW_CUDA_PROFILE=1: events between the phases of each large pass (per-pass means printed to stderr, or
//   appended to MINNOW_CUDA_PROFILE_FILE, every MINNOW_CUDA_PROFILE_EVERY passes and at the end; the first
//   MINNOW_CUDA_PROFILE_SKIP (2) passes left out), and for small passes the GPU time from the input upload to the
//   end of the graph against the host's wall time of the whole pass.
// - MINNOW_CUDA_TRACE=1: the in-graph kernel timeline of the first single-token graph: every mat-vec and
//   attention launch gets a slot of three %globaltimer stamps (MatvecArgs::d_trace); per kind, the mean hand-over
//   (first block past the wait - the previous kernel's last block end) and work (last block end - first block
//   past the wait) are printed at the end.
#include <cuda_runtime.h>

#include <string>
#include <vector>

namespace minnow::cuda_impl {

class Profiler {
 public:
  enum Phase { kOther = 0, kDequant, kQkv, kO, kGu, kDown, kRope, kAttn, kOut, kOutOther, kPhases };

  Profiler(cudaStream_t stream, int trace_slots);  // reads the environment; trace_slots: launches per pass
  ~Profiler();                                      // prints what was measured
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  bool on() const { return prof_; }
  // Large passes: an event on the stream closing `phase`; after the pass, finish() adds up the phases.
  void mark(int phase);
  void finish(int nt, int n_out);
  // Small passes: event 0 before the upload, event 1 after the graph; done() with the host's wall time.
  void small_event(int i);
  void small_done(double wall_ms);
  static double host_ms();
  void add_host_ms(double ms) { prof_host_ms_ += ms; }

  // Kernel timeline: capture_begin(nt, n_out, key) before capturing a graph; slot(label) for each launch inside
  // it (nullptr when not traced); capture_end(); before_launch(key) before launching a graph; after_pass() after
  // the pass has finished.
  void capture_begin(int nt, int n_out, int key);
  unsigned long long* slot(const std::string& label);
  void capture_end() { capturing_ = false; }
  void before_launch(int key);
  void after_pass();

 private:
  void print() const;
  cudaStream_t stream_;
  bool prof_ = false;
  long prof_every_ = 100, prof_passes_ = 0, prof_tokens_ = 0, prof_outs_ = 0;
  int prof_skip_ = 2;
  std::vector<cudaEvent_t> ev_;
  std::vector<int> ev_phase_;
  size_t used_ = 0;
  double ms_[kPhases] = {};
  double prof_host_ms_ = 0;
  cudaEvent_t small_ev_[2] = {nullptr, nullptr};
  long small_passes_ = 0;
  int small_skip_ = 8;  // warm-up small passes not counted
  double small_gpu_ms_ = 0, small_wall_ms_ = 0;

  bool trace_ = false;
  int trace_slots_ = 0;
  unsigned long long* d_trace_ = nullptr;  // [trace_slots_][3]
  std::vector<std::string> label_;         // [slots used] "L0 qkv", ...
  std::vector<double> gap_, work_;         // [slots used] sums over traced passes, us
  double total_ = 0;                       // first kernel start -> last kernel end
  long n_ = 0;
  int skip_ = 8;                           // warm-up passes not counted
  int key_ = -1;                           // the traced graph
  bool capturing_ = false, pending_ = false;
};

}  // namespace minnow::cuda_impl
