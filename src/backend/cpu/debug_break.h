#pragma once
// Deliberate bugs for negative-control tests: MINNOW_DEBUG_BREAK=name[,name...] makes the CPU forward pass
// reproduce a classic mistake, so the golden tests can prove they detect it. Read once when a backend is
// built; a loud warning is printed when any is active. Never set it outside tests.
#include <cstdint>

namespace minnow {

enum DebugBreak : uint32_t {
  kBreakNone = 0,
  kBreakRopeFixedPos = 1u << 0,   // rope_fixed_pos: RoPE always at position 0
  kBreakLayerNorm = 1u << 1,      // layernorm: mean-subtracting LayerNorm instead of RMSNorm
  kBreakGqaOrder = 1u << 2,       // gqa_order: query head h reads KV head h % n_head_kv
  kBreakRopeHalfSplit = 1u << 3,  // rope_halfsplit: NeoX (half-split) pairs instead of adjacent
  kBreakDecodeStuckPos = 1u << 4, // decode_stuck_pos: `minnow run` decodes every new token at one position
  kBreakIgnoreKv = 1u << 5,       // ignore_kv: attention sees only the positions computed in the same pass
};

// Parses the environment variable; unknown names are an Error.
uint32_t debug_break_from_env();

}  // namespace minnow
