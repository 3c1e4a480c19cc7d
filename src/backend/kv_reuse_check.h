#pragma once
// A checking wrapper for the decode-loop tests: MINNOW_CHECK_KV_REUSE=1 wraps the backend so that every
// position of a sequence slot is computed exactly once. A batch that re-submits a position the slot's KV cache
// already holds (a recomputed prefix), or a seq_clear of a slot that holds positions, is an Error. Right for
// one-shot generation (`minnow run`); programs that legitimately rewrite their cache (chat, server) never set it.
#include <memory>

#include "backend/backend.h"

namespace minnow {

// Returns `inner` unchanged unless MINNOW_CHECK_KV_REUSE is set to a non-empty value other than "0".
std::unique_ptr<Backend> maybe_wrap_kv_reuse_check(std::unique_ptr<Backend> inner, int n_seq_max);

}  // namespace minnow
