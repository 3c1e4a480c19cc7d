#include "backend/cpu/debug_break.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/error.h"

namespace minnow {

uint32_t debug_break_from_env() {
  const char* env = std::getenv("MINNOW_DEBUG_BREAK");
  if (!env || !*env) return kBreakNone;
  uint32_t flags = 0;
  std::string s = env;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    const std::string name = s.substr(start, comma - start);
    if (name == "rope_fixed_pos") flags |= kBreakRopeFixedPos;
    else if (name == "layernorm") flags |= kBreakLayerNorm;
    else if (name == "gqa_order") flags |= kBreakGqaOrder;
    else if (name == "rope_halfsplit") flags |= kBreakRopeHalfSplit;
    else if (name == "decode_stuck_pos") flags |= kBreakDecodeStuckPos;
    else if (name == "ignore_kv") flags |= kBreakIgnoreKv;
    else if (!name.empty()) throw Error("unknown MINNOW_DEBUG_BREAK value '" + name + "'");
    start = comma + 1;
  }
  if (flags) std::fprintf(stderr, "WARNING: MINNOW_DEBUG_BREAK=%s: the forward pass is deliberately wrong\n", env);
  return flags;
}

}  // namespace minnow
