// Attention of each token over its sequence's F16 KV cache, split into chunks of 128 positions
// (flash-decoding). One block per (chunk, kv head [x query-head group of <= 4], token): it stages the chunk's
// K and V rows in shared memory (16-byte loads, all in flight at once), computes the scores of its query
// heads, their softmax statistics and the unnormalised weighted sum of V, and writes them to scratch. The last
// block of a (token, kv head) to finish (atomic counter) merges the chunks in a fixed order, so results do
// not depend on timing, and a token's result does not depend on the other tokens of the batch.
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/launch_pdl.cuh"
#include "backend/cuda/quant_dev.cuh"
#include "common/error.h"

#include "backend/cuda/attn_body.cuh"

namespace minnow::cuda {
namespace {

template <int D>
__global__ void __launch_bounds__(threads_for(D))
    k_attn(AttnArgs a, int splits, int g_blocks, int chunk, int gper) {
  extern __shared__ __align__(16) float smem[];
  trace_first(a.d_trace);
  attn_block<D, threads_for(D)>(a, splits, g_blocks, chunk, gper, int(blockIdx.x), int(blockIdx.y),
                                int(blockIdx.z), smem, [&] {
                                  pdl_trigger();
                                  pdl_wait();
                                  trace_first(a.d_trace ? a.d_trace + 1 : nullptr);
                                });
  trace_last(a.d_trace ? a.d_trace + 2 : nullptr);  // every return in attn_block is uniform per block
}

template <int D>
void launch(const AttnArgs& a, cudaStream_t s) {
  const AttnCfg cfg = attn_cfg(D);
  const size_t smem = smem_bytes(D, cfg.chunk);
  static bool attr_set = false;
  if (!attr_set) {
    check(cudaFuncSetAttribute(k_attn<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
          "attention smem attribute");
    attr_set = true;
  }
  const int splits = n_splits(a.n_ctx, cfg.chunk);
  const int G = a.n_head / a.n_head_kv;
  const int g_blocks = (G + cfg.heads - 1) / cfg.heads;
  dim3 grid(unsigned(splits), unsigned(a.n_head_kv * g_blocks), unsigned(a.n));
  launch_pdl(k_attn<D>, grid, dim3(threads_for(D)), smem, s, a, splits, g_blocks, cfg.chunk, cfg.heads);
}

}  // namespace

int attn_chunk(int head_dim) { return attn_cfg(head_dim).chunk; }

size_t attn_scratch_floats(int n, int n_head, int head_dim, int n_ctx) {
  return size_t(n) * n_head * n_splits(n_ctx, attn_chunk(head_dim)) * (head_dim + 2);
}

size_t attn_counter_ints(int n, int n_head, int n_head_kv) {
  (void)n_head_kv;  // one counter per (token, query-head group); groups are at least one head
  return size_t(n) * n_head;
}

bool attn_head_dim_supported(int head_dim) {
  return head_dim == 64 || head_dim == 128 || head_dim == 32 || head_dim == 256;
}

void attention(const AttnArgs& a, cudaStream_t s) {
  if (a.n <= 0) return;
  if (a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0) throw Error("cuda: attention: bad head counts");
  if (!a.d_counters) throw Error("cuda: attention: no counters");
  switch (a.head_dim) {
    case 32: launch<32>(a, s); break;
    case 64: launch<64>(a, s); break;
    case 128: launch<128>(a, s); break;
    case 256: launch<256>(a, s); break;
    default: throw Error("cuda: attention: head dimension " + std::to_string(a.head_dim) + " is not supported");
  }
}

}  // namespace minnow::cuda
