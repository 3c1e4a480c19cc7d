// Quantized matrix-vector products for decode (and batches of up to 32 tokens).
// A block of R warps computes R output rows (one warp per row, 8 tokens per block row of the grid):
//   1. it copies its R weight rows into shared memory with cp.async (before waiting on the previous kernel:
//      programmatic dependent launch lets this overlap the previous kernel's tail);
//   2. waits for the previous kernel, computes each token's RMSNorm statistics (one warp per token, fixed
//      order) and stages x * inv_rms * norm in shared memory (f32, padded against bank conflicts);
//   3. each warp reduces its row from shared memory: Q4_K (32 weights per 16-byte step) and Q6_K (64 per three
//      16-byte steps) have dedicated loops, every other format goes through deq8.
// The arithmetic of row b never depends on how many tokens share the launch (batch invariance).
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/launch_pdl.cuh"
#include "backend/cuda/quant_dev.cuh"
#include "common/error.h"

#include "backend/cuda/matvec_body.cuh"

namespace minnow::cuda {
namespace {

template <int NB, int XM>
__global__ void __launch_bounds__(kMaxWarps * 32) k_matvec(KArgs a) {
  extern __shared__ __align__(16) uint8_t smem[];
  mv_block<NB, XM>(a, int(blockIdx.x), int(blockIdx.y), smem, [] {
    pdl_trigger();
    pdl_wait();
  });
}

template <int NB, int XM>
void launch_mv(const KArgs& k, int R, size_t smem, cudaStream_t s) {
  static bool attr_set = false;
  if (!attr_set) {
    check(cudaFuncSetAttribute(k_matvec<NB, XM>, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem),
          "matvec smem attribute");
    attr_set = true;
  }
  const int rb = R * k.rw;
  const unsigned gx = unsigned((k.total_rows + rb - 1) / rb), gy = unsigned((k.nb + NB - 1) / NB);
  launch_pdl(k_matvec<NB, XM>, dim3(gx, gy), dim3(unsigned(R * 32)), smem, s, k);
}

}  // namespace

void rope_table(int n_ctx, int n_rot, double freq_base, double freq_scale, float* out, const float* factors) {
  for (int p = 0; p < n_ctx; ++p)
    for (int i = 0; 2 * i < n_rot; ++i) {
      double th = double(p) * freq_scale * std::pow(freq_base, -2.0 * i / n_rot);
      if (factors) th /= double(factors[i]);
      out[(size_t(p) * (n_rot / 2) + i) * 2] = float(std::cos(th));
      out[(size_t(p) * (n_rot / 2) + i) * 2 + 1] = float(std::sin(th));
    }
}

void matvec(const MatvecArgs& a, cudaStream_t s) {
  if (a.nb <= 0) return;
  KArgs k{};
  const int NB = a.nb == 1 ? 1 : 8;
  int xm = 0;
  size_t stage = 0;
  mv_prepare(a, NB, k, xm, stage);
  const int slots_per_row = a.mode == MvMode::SwiGLU ? 2 : 1;
  // Rows per warp: enough blocks to fill the card, few enough to be resident in one wave; RoPE pairs need 2.
  // (A function of the matrix shapes only, so the arithmetic never depends on nb.)
  int rw = k.total_rows <= 3200 ? 1 : k.total_rows <= 12800 ? 2 : 4;
  // Warps per block: 16 halves the blocks, so the activation staging every block repeats costs half the
  // instructions (v14: tg128 1,276 -> 1,340 tok/s); the output matrix (4 rows per warp) keeps 8, which measured
  // faster there. Other block shapes measured slower (v15, docs/cuda_notes.md); the arithmetic of a row never
  // depends on the shape.
  int R = k.total_rows <= 12800 ? 16 : 8;
  if (a.mode == MvMode::QkvRope) rw = 1;  // RoPE pairs are exchanged through shared memory
  size_t smem = 0;
  for (;;) {
    smem = size_t(R) * rw * slots_per_row * k.slot_bytes + stage;
    if (smem <= size_t(kMaxSmem)) break;
    if (rw > 1) rw /= 2;
    else if (R > (a.mode == MvMode::QkvRope ? 2 : 1)) R /= 2;
    else throw Error("cuda: matvec: rows too long for shared memory");
  }
  k.rw = rw;
  if (NB == 1) {
    if (xm == 2) launch_mv<1, 2>(k, R, smem, s);
    else if (xm == 0) launch_mv<1, 0>(k, R, smem, s);
    else launch_mv<1, 1>(k, R, smem, s);
  } else {
    if (xm == 2) launch_mv<8, 2>(k, R, smem, s);
    else if (xm == 0) launch_mv<8, 0>(k, R, smem, s);
    else launch_mv<8, 1>(k, R, smem, s);
  }
}

}  // namespace minnow::cuda
