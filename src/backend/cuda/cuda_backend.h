#pragma once
// The CUDA backend (built only with -DMINNOW_CUDA=ON). Weights are uploaded once in their quantized formats,
// the KV cache is F16 on the GPU, and a decode step is one CUDA graph replay.
#include <memory>

#include "backend/backend.h"

namespace minnow {

// True when the CUDA runtime loads and at least one GPU is visible.
bool cuda_available();
// Uploads the model's weights and allocates the cache. Throws Error when no GPU is usable, when the model
// needs something this backend does not support, or when the GPU is out of memory.
std::unique_ptr<Backend> make_cuda_backend(const Model& model, const BackendOptions& opt);

}  // namespace minnow
