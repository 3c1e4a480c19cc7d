#pragma once
// Chooses and builds a backend from a device string: "auto" (CUDA when built with it and a GPU is present,
// else CPU), "cpu" or "cuda". Anything else, or "cuda" without CUDA support or a GPU, is an Error.
#include <memory>
#include <string>

#include "backend/backend.h"

namespace minnow {

std::unique_ptr<Backend> make_backend(const Model& model, const BackendOptions& opt,
                                      const std::string& device = "auto");
// The device "auto" resolves to on this machine ("cpu" or "cuda"); throws Error for unknown names.
std::string resolve_device(const std::string& device);

}  // namespace minnow
