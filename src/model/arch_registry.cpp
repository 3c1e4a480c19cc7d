// The architectures minnow knows, by general.architecture. Adding one: write src/model/arch_<name>.cpp with
// its ArchDesc and list it here (docs/architecture.md has the checklist).
#include <string>

#include "model/arch.h"

namespace minnow {

namespace {
const ArchDesc* const kArchs[] = {&kArchGemma3, &kArchLlama, &kArchPhi3, &kArchQwen2, &kArchQwen3};
}

const ArchDesc* find_arch(const std::string& name) {
  for (const ArchDesc* a : kArchs)
    if (name == a->name) return a;
  return nullptr;
}

std::string supported_archs() {
  std::string out;
  for (const ArchDesc* a : kArchs) out += (out.empty() ? "" : ", ") + std::string(a->name);
  return out;
}

}  // namespace minnow
