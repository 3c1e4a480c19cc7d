// Persistent decode kernel: the mat-vec and attention stages of every layer in one cooperative launch.
// Between kernels, each mat-vec of the per-op path pays a fixed chain (launch, wait for the previous grid to
// drain, then its own activation staging); here a block that finishes its part of stage s issues the weight
// copies of its part of stage s + 1 and then waits at a grid-wide barrier (an atomic counter in global
// memory), so only the barrier stays between stages. Each stage's virtual blocks (the blocks the per-op
// kernel would launch) are dealt round-robin over the resident blocks and run the same device code (mv_block,
// attn_block).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "backend/cuda/attn_body.cuh"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/matvec_body.cuh"
#include "common/error.h"

namespace minnow::cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps: the mat-vec's R
constexpr size_t kSmemBudget =
    110 * 1024;  // per block, so that two blocks fit on an SM (MINNOW_CUDA_PERSISTENT_SMEM: KiB)

struct alignas(16) DStage {
  int kind;               // 0 mat-vec (int8 path), 1 attention
  int nvb;                // virtual blocks
  int region;             // mat-vec: mbarrier set of its weight region (0 / 1)
  unsigned w_off, x_off;  // dynamic shared memory offsets: weights (attention: its staging) and activations
  KArgs mv;
  AttnArgs at;
  int splits, g_blocks, at_y, chunk, gper;
};

// Grid-wide barrier, split in two: a block arrives as soon as its part of a stage is done (release reduction
// on a counter that only grows; the bar.sync before it orders the whole block's writes first) and waits only
// when it needs the other blocks' results (relaxed spin, then one acquire fence), so the next stage's
// descriptor copy, weight issue and constant loads overlap the barrier. Target of the k-th wait: base + k *
// gridDim.
__device__ __forceinline__ void grid_arrive(unsigned long long* bar) {
  __syncthreads();
  if (threadIdx.x == 0) asm volatile("red.release.gpu.global.add.u64 [%0], 1;" ::"l"(bar) : "memory");
}
__device__ __forceinline__ void grid_wait(unsigned long long* bar, unsigned long long target) {
  if (threadIdx.x == 0) {
    unsigned long long v = 0;
    do {
      asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(bar) : "memory");
    } while (v < target);
    asm volatile("fence.acq_rel.gpu;" ::: "memory");
  }
  __syncthreads();
}

__device__ __forceinline__ unsigned long long gtime() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// trace (optional, [3 * n_st]): per stage, block 0's start after the barrier, and the latest end of any block
// (atomicMax); MINNOW_CUDA_TRACE=1 prints where the time goes.
// deep: every mat-vec's weights are issued one stage early (at the start of the stage before it, into the
// weight region that stage does not use; bulk copies only).
template <int NB, int D>
__global__ void __launch_bounds__(kThreads, 2)
    k_decode(const DStage* __restrict__ st, int n_st, unsigned long long* bar, unsigned long long base,
             unsigned long long* trace, int deep) {
  extern __shared__ __align__(16) uint8_t smem[];
  constexpr int kWords = int(sizeof(DStage) / 4);
  __shared__ __align__(16) int s_desc[2][kWords];  // stages s and s + 1 (shared, not global, loads)
  for (int i = int(threadIdx.x); i < kWords; i += kThreads)
    s_desc[0][i] = reinterpret_cast<const int*>(st)[i];
  __syncthreads();
  if (deep) {
    const DStage& S0 = *reinterpret_cast<const DStage*>(s_desc[0]);
    if (S0.kind == 0 && int(blockIdx.x) < S0.nvb)
      mv_issue(S0.mv, int(blockIdx.x), smem + S0.w_off, S0.region);
  }
  unsigned long long target = base;
  for (int s = 0; s < n_st; ++s) {
    const DStage& S = *reinterpret_cast<const DStage*>(s_desc[s & 1]);
    if (s + 1 < n_st) {  // next stage's descriptor; with deep, its weights too
      const int* src = reinterpret_cast<const int*>(st + s + 1);
      for (int i = int(threadIdx.x); i < kWords; i += kThreads) s_desc[(s + 1) & 1][i] = src[i];
      __syncthreads();
      const DStage& N = *reinterpret_cast<const DStage*>(s_desc[(s + 1) & 1]);
      if (deep && N.kind == 0 && int(blockIdx.x) < N.nvb)
        mv_issue(N.mv, int(blockIdx.x), smem + N.w_off, N.region);
    }
    const bool sync = s > 0;
    if (sync) target += gridDim.x;
    const int nvb = S.nvb;
    if (int(blockIdx.x) >= nvb) {
      if (sync) grid_wait(bar, target);
      if (s + 1 < n_st) grid_arrive(bar);
      continue;
    }
    bool first = true;
    for (int vb = int(blockIdx.x); vb < nvb; vb += int(gridDim.x)) {
      auto wait = [&] {
        if (first && sync) grid_wait(bar, target);
        if (first && trace && blockIdx.x == 0 && threadIdx.x == 0) trace[3 * s] = gtime();
      };
      if (S.kind == 0) {
        mv_block_ex<NB, 2>(S.mv, vb, 0, smem + S.w_off, smem + S.x_off, !(deep && first), S.region, wait);
      } else {
        const int bx = vb % S.splits, rest = vb / S.splits;
        attn_block<D, kThreads>(S.at, S.splits, S.g_blocks, S.chunk, S.gper, bx, rest % S.at_y, rest / S.at_y,
                                reinterpret_cast<float*>(smem + S.w_off), wait);
      }
      __syncthreads();  // shared memory is reused by the next virtual block / stage
      first = false;
    }
    if (trace && threadIdx.x == 0) atomicMax(trace + 3 * s + 1, gtime());
    if (s + 1 < n_st) grid_arrive(bar);
  }
}

using KernelFn = void (*)(const DStage*, int, unsigned long long*, unsigned long long, unsigned long long*,
                          int);

template <int NB, int D>
KernelFn pick() {
  return k_decode<NB, D>;
}

}  // namespace

struct DecodePlan::Impl {
  KernelFn kernel = nullptr;
  DStage* d_st = nullptr;
  int n_st = 0;
  unsigned long long* d_bar = nullptr;
  unsigned long long base = 0;
  int grid = 0;
  size_t smem = 0;
  bool trace = false;
  bool deep = false;
  std::vector<int> kinds;  // per stage: MvMode of a mat-vec, 4 attention
  unsigned long long* d_trace = nullptr;
  int launches = 0;
};

DecodePlan::DecodePlan(const std::vector<DecodeStage>& stages, int nb) {
  if (stages.empty()) throw Error("cuda: decode plan: no stages");
  if (nb < 1 || nb > 8) throw Error("cuda: decode plan: 1 to 8 tokens");
  const int NB = nb == 1 ? 1 : 8;
  int D = 0;
  for (const auto& s : stages)
    if (s.attention) {
      if (D && D != s.at.head_dim) throw Error("cuda: decode plan: mixed head sizes");
      D = s.at.head_dim;
    }
  if (D == 0) D = 64;
  if (D != 32 && D != 64 && D != 128) throw Error("cuda: decode plan: head dimension " + std::to_string(D));
  KernelFn fn = D == 32   ? (NB == 1 ? pick<1, 32>() : pick<8, 32>())
                : D == 64 ? (NB == 1 ? pick<1, 64>() : pick<8, 64>())
                          : (NB == 1 ? pick<1, 128>() : pick<8, 128>());
  size_t budget = kSmemBudget;
  if (const char* e = std::getenv("MINNOW_CUDA_PERSISTENT_SMEM")) budget = size_t(std::atoi(e)) * 1024;
  if (budget < 16 * 1024 || budget > 220 * 1024)
    throw Error("cuda: decode plan: MINNOW_CUDA_PERSISTENT_SMEM out of range");
  check(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, int(budget)),
        "decode smem attribute");
  int per_sm = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, fn, kThreads, budget), "decode occupancy");
  int dev = 0, n_sm = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev), "SM count");
  if (per_sm < 1) throw Error("cuda: decode plan: kernel does not fit on an SM");
  const int grid = n_sm * per_sm;
  const int R = kThreads / 32;

  std::vector<DStage> host(stages.size());
  std::vector<size_t> wbytes(stages.size(), 0), xbytes(stages.size(), 0);
  bool all_bulk = true;
  for (size_t i = 0; i < stages.size(); ++i) {
    const DecodeStage& s = stages[i];
    DStage& d = host[i];
    d = DStage{};
    if (!s.attention) {
      if (s.mv.nb != nb) throw Error("cuda: decode plan: token count differs between stages");
      if (s.mv.d_pf[0] || s.mv.d_pf[1] || s.mv.d_pf[2]) throw Error("cuda: decode plan: no prefetch ranges");
      int xm = 0;
      size_t stage = 0;
      mv_prepare(s.mv, NB, d.mv, xm, stage);
      if (xm != 2) throw Error("cuda: decode plan: only Q4_K / Q6_K mat-vecs");
      d.mv.bulk =
          1;  // copy-engine weight copies (needed for the early issue), unless a row is not 16-byte sized
      for (int k = 0; k < d.mv.n_mats; ++k)
        if (d.mv.m[k].row_bytes % 16 != 0) d.mv.bulk = 0;
      if (const char* e = std::getenv("MINNOW_CUDA_BULK"))
        if (std::string(e) == "0") d.mv.bulk = 0;
      const int slots = s.mv.mode == MvMode::SwiGLU ? 2 : 1;
      // Rows per warp: one wave of virtual blocks where shared memory allows (arithmetic never depends on
      // it).
      int rw = std::max(1, (d.mv.total_rows + grid * R - 1) / (grid * R));
      const int rw_cap = s.mv.mode == MvMode::QkvRope ? kMaxQkvRows / R : 64;
      rw = std::min(rw, rw_cap);
      while (rw > 1 && size_t(R) * rw * slots * d.mv.slot_bytes + stage > budget) --rw;
      wbytes[i] = size_t(R) * rw * slots * d.mv.slot_bytes;
      xbytes[i] = stage;
      if (wbytes[i] + stage > budget) throw Error("cuda: decode plan: rows too long for shared memory");
      all_bulk = all_bulk && d.mv.bulk;
      d.kind = 0;
      if (d.mv.q8o) {  // int8 hand-off: whole 32-blocks of the output per virtual block
        rw = std::max(1, 32 / R) * ((R * rw + 31) / 32);
        if ((R * rw) % 32 != 0 || R * rw > kMaxQkvRows) throw Error("cuda: decode plan: int8 output shape");
        wbytes[i] = size_t(R) * rw * slots * d.mv.slot_bytes;
        if (wbytes[i] + stage > budget) throw Error("cuda: decode plan: int8 output does not fit");
      }
      d.mv.rw = rw;
      d.nvb = (d.mv.total_rows + R * rw - 1) / (R * rw);
    } else {
      const AttnArgs& a = s.at;
      if (a.n != nb) throw Error("cuda: decode plan: token count differs between stages");
      if (a.n_head_kv <= 0 || a.n_head % a.n_head_kv != 0 || !a.d_counters)
        throw Error("cuda: decode plan: bad attention arguments");
      d.kind = 1;
      d.at = a;
      const AttnCfg cfg = attn_cfg(a.head_dim);
      d.chunk = cfg.chunk;
      d.gper = cfg.heads;
      d.splits = n_splits(a.n_ctx, cfg.chunk);
      const int G = a.n_head / a.n_head_kv;
      d.g_blocks = (G + cfg.heads - 1) / cfg.heads;
      d.at_y = a.n_head_kv * d.g_blocks;
      d.nvb = d.splits * d.at_y * a.n;
      wbytes[i] = cuda::smem_bytes(D, cfg.chunk);
    }
  }
  // Shared memory plan. Deep prefetch: mat-vec weights alternate between regions 0 and 1, an attention stage
  // stages K/V in the region of the mat-vec before it, activations have their own region; stage s + 1's
  // weights are issued at the start of stage s, so its region must differ from the one stage s uses.
  std::vector<int> region(stages.size(), 0);
  int mv_count = 0;
  for (size_t i = 0; i < stages.size(); ++i) {
    if (host[i].kind == 0)
      region[i] = (mv_count++) & 1;
    else
      region[i] = i > 0 ? region[i - 1] : 0;
  }
  size_t rsz[2] = {0, 0}, xsz = 0;
  bool deep = all_bulk && std::getenv("MINNOW_CUDA_DEEP") == nullptr;
  if (const char* e = std::getenv("MINNOW_CUDA_DEEP")) deep = all_bulk && std::string(e) != "0";
  for (size_t i = 0; i < stages.size(); ++i) {
    rsz[region[i]] = std::max(rsz[region[i]], (wbytes[i] + 15) / 16 * 16);
    xsz = std::max(xsz, (xbytes[i] + 15) / 16 * 16);
    if (i + 1 < stages.size() && host[i + 1].kind == 0 && region[i + 1] == region[i]) deep = false;
  }
  if (rsz[0] + rsz[1] + xsz > budget) deep = false;
  size_t smem = 0;
  for (size_t i = 0; i < stages.size(); ++i) {
    DStage& d = host[i];
    if (deep) {
      d.region = region[i];
      d.w_off = unsigned(region[i] == 0 ? 0 : rsz[0]);
      d.x_off = unsigned(rsz[0] + rsz[1]);
    } else {
      d.region = 0;
      d.w_off = 0;
      d.x_off = unsigned((wbytes[i] + 15) / 16 * 16);
    }
    smem = std::max(smem, size_t(d.x_off) + xbytes[i]);
    smem = std::max(smem, size_t(d.w_off) + wbytes[i]);
  }
  if (smem > budget) throw Error("cuda: decode plan: shared memory");
  impl_ = new Impl;
  impl_->kernel = fn;
  impl_->n_st = int(host.size());
  impl_->grid = grid;
  impl_->smem = budget;
  impl_->trace = std::getenv("MINNOW_CUDA_TRACE") != nullptr;
  impl_->deep = deep;
  impl_->kinds.resize(host.size());
  for (size_t i = 0; i < host.size(); ++i) impl_->kinds[i] = host[i].kind == 1 ? 4 : int(stages[i].mv.mode);
  std::fprintf(
      stderr,
      "cuda: persistent decode: %d blocks (%d per SM) x %d threads, %zu of %zu KiB shared memory, %d stages, "
      "weights issued %s\n",
      grid, per_sm, kThreads, (smem + 1023) / 1024, budget / 1024, int(host.size()),
      deep ? "one stage early" : "at each stage");
  try {
    check(cudaMalloc(&impl_->d_st, host.size() * sizeof(DStage)), "cudaMalloc");
    check(cudaMemcpy(impl_->d_st, host.data(), host.size() * sizeof(DStage), cudaMemcpyHostToDevice),
          "upload stages");
    check(cudaMalloc(&impl_->d_bar, sizeof(unsigned long long)), "cudaMalloc");
    check(cudaMemset(impl_->d_bar, 0, sizeof(unsigned long long)), "cudaMemset");
  } catch (...) {
    cudaFree(impl_->d_st);
    cudaFree(impl_->d_bar);
    delete impl_;
    impl_ = nullptr;
    throw;
  }
}

DecodePlan::~DecodePlan() {
  if (!impl_) return;
  cudaFree(impl_->d_st);
  cudaFree(impl_->d_bar);
  cudaFree(impl_->d_trace);
  delete impl_;
}

void DecodePlan::launch(cudaStream_t s) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(unsigned(impl_->grid));
  cfg.blockDim = dim3(unsigned(kThreads));
  cfg.dynamicSmemBytes = impl_->smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;
  attr[0].val.cooperative = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  Impl& m = *impl_;
  const bool trace = m.trace && ++m.launches == 20;  // one traced run, once warm
  if (trace) {
    if (!m.d_trace) check(cudaMalloc(&m.d_trace, sizeof(unsigned long long) * 3 * m.n_st), "cudaMalloc");
    check(cudaMemsetAsync(m.d_trace, 0, sizeof(unsigned long long) * 3 * m.n_st, s), "cudaMemset");
  }
  check(cudaLaunchKernelEx(&cfg, m.kernel, static_cast<const DStage*>(m.d_st), m.n_st, m.d_bar, m.base,
                           trace ? m.d_trace : static_cast<unsigned long long*>(nullptr), m.deep ? 1 : 0),
        "decode launch");
  m.base += (unsigned long long)(m.n_st - 1) * unsigned(m.grid);
  if (trace) {
    std::vector<unsigned long long> t(3 * size_t(m.n_st));
    check(cudaMemcpyAsync(t.data(), m.d_trace, t.size() * sizeof(t[0]), cudaMemcpyDeviceToHost, s),
          "trace copy");
    check(cudaStreamSynchronize(s), "trace sync");
    const char* names[5] = {"matvec", "matvec+add", "gate/up", "qkv", "attention"};
    double work[5] = {0, 0, 0, 0, 0}, gap[5] = {0, 0, 0, 0, 0};
    int cnt[5] = {0, 0, 0, 0, 0};
    for (int i = 0; i < m.n_st; ++i) {
      const int k = m.kinds[size_t(i)];
      work[k] += double(t[3 * size_t(i) + 1] - t[3 * size_t(i)]) / 1000.0;
      if (i + 1 < m.n_st) gap[k] += double(int64_t(t[3 * size_t(i) + 3] - t[3 * size_t(i) + 1])) / 1000.0;
      ++cnt[k];
    }
    std::fprintf(
        stderr,
        "cuda: persistent trace (us per stage: block 0 start -> last block done; then -> next start)\n");
    for (int k = 0; k < 5; ++k)
      if (cnt[k])
        std::fprintf(stderr, "  %-10s x%3d: work %6.2f  barrier %6.2f\n", names[k], cnt[k], work[k] / cnt[k],
                     gap[k] / cnt[k]);
    std::fprintf(stderr, "  total %.1f us\n", double(t[3 * size_t(m.n_st - 1) + 1] - t[0]) / 1000.0);
  }
}

int DecodePlan::blocks() const { return impl_->grid; }
size_t DecodePlan::smem_bytes() const { return impl_->smem; }

}  // namespace minnow::cuda
