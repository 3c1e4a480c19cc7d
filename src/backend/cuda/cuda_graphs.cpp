// CudaBackend's graphs: each decode batch shape (tokens, wanted rows) is captured once from enqueue_small and
// replayed; the kernels read their inputs (tokens, positions, sequences, wanted rows) from d_in_, which every
// pass uploads before the launch, so one graph serves every pass of its shape.
#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend_impl.h"

namespace minnow::cuda_impl {

void CudaBackend::launch_graph(int nt, int n_out) {
  const int key = nt * (kSmallBatch + 1) + n_out;
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    cudaGraph_t g = nullptr;
    prof_->capture_begin(nt, n_out, key);
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
    try {
      enqueue_small(nt, n_out);
      prof_->capture_end();
    } catch (...) {
      prof_->capture_end();
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
  prof_->before_launch(key);
  check(cudaGraphLaunch(it->second, stream_), "graph launch");
}

}  // namespace minnow::cuda_impl
