#include "backend/backend_factory.h"

#include "common/error.h"
#ifdef MINNOW_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace minnow {

std::string resolve_device(const std::string& device) {
  if (device == "cpu") return "cpu";
  if (device == "cuda") {
#ifdef MINNOW_HAVE_CUDA
    if (!cuda_available()) throw Error("--device cuda: no usable CUDA GPU found");
    return "cuda";
#else
    throw Error("--device cuda: this build has no CUDA support (configure with -DMINNOW_CUDA=ON)");
#endif
  }
  if (device == "auto" || device.empty()) {
#ifdef MINNOW_HAVE_CUDA
    if (cuda_available()) return "cuda";
#endif
    return "cpu";
  }
  throw Error("unknown device '" + device + "' (expected auto, cpu or cuda)");
}

std::unique_ptr<Backend> make_backend(const Model& model, const BackendOptions& opt, const std::string& device) {
  const std::string d = resolve_device(device);
#ifdef MINNOW_HAVE_CUDA
  if (d == "cuda") return make_cuda_backend(model, opt);
#endif
  return make_cpu_backend(model, opt);
}

}  // namespace minnow
