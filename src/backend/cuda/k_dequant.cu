// Device weight layout (padding of blocks), dequantization to f16 (prompt GEMMs) and embedding rows (f32).
#include <cstring>
#include <string>

#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/quant_dev.cuh"
#include "common/error.h"

namespace minnow::cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // clear a sticky-free error so later calls report their own
    throw Error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
  }
}

bool dev_type_supported(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q4_0: case GgmlType::Q4_1:
    case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0: case GgmlType::Q2_K: case GgmlType::Q3_K:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

int dev_block_elems(GgmlType t) {
  switch (t) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: return 8;
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
      return 256;
    default: return 32;
  }
}

size_t dev_block_bytes(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 32;
    case GgmlType::F16: case GgmlType::BF16: return 16;
    case GgmlType::Q4_0: return 20;
    case GgmlType::Q4_1: return 20;
    case GgmlType::Q5_0: return 24;
    case GgmlType::Q5_1: return 24;
    case GgmlType::Q8_0: return 36;
    case GgmlType::Q2_K: return 84;
    case GgmlType::Q3_K: return 112;
    case GgmlType::Q4_K: return 144;
    case GgmlType::Q5_K: return 176;
    case GgmlType::Q6_K: return 224;
    default: throw Error("cuda: unsupported tensor type " + std::string(type_name(t)));
  }
}

size_t dev_row_bytes(GgmlType t, int64_t n) {
  return size_t(n / dev_block_elems(t)) * dev_block_bytes(t);
}

void repack_rows(GgmlType t, const void* src, int64_t n, int64_t n_rows, void* dst) {
  const size_t src_row = row_bytes(t, n), dst_row = dev_row_bytes(t, n);
  if (src_row == dst_row) {
    std::memcpy(dst, src, src_row * size_t(n_rows));
    return;
  }
  const size_t sb = traits(t).type_size, db = dev_block_bytes(t);
  const int64_t blocks = n / dev_block_elems(t);
  auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint8_t* sr = s + size_t(r) * src_row;
    uint8_t* dr = d + size_t(r) * dst_row;
    for (int64_t b = 0; b < blocks; ++b) {
      std::memcpy(dr + size_t(b) * db, sr + size_t(b) * sb, sb);
      std::memset(dr + size_t(b) * db + sb, 0, db - sb);
    }
  }
}

namespace {

template <int T>
__global__ void k_dequant_f16(const uint8_t* __restrict__ w, int64_t n_in, int64_t n_units, __half* __restrict__ out) {
  const int64_t u = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (u >= n_units) return;
  const int64_t e = u * 8;
  const int64_t row = e / n_in, col = e % n_in;
  const uint8_t* blk = w + row * (n_in / Fmt<T>::elems) * Fmt<T>::bytes + (col / Fmt<T>::elems) * Fmt<T>::bytes;
  float v[8];
  deq8<T>(blk, int(col % Fmt<T>::elems), v);
  __align__(16) __half h[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) h[i] = __float2half_rn(v[i]);
  *reinterpret_cast<uint4*>(out + e) = *reinterpret_cast<const uint4*>(h);
}

template <int T>
__global__ void k_get_rows(const uint8_t* __restrict__ table, int n_cols, const int32_t* __restrict__ ids,
                           float* __restrict__ out) {
  const int r = blockIdx.y;
  const int col = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (col >= n_cols) return;
  const uint8_t* row = table + int64_t(ids[r]) * (n_cols / Fmt<T>::elems) * Fmt<T>::bytes;
  float v[8];
  deq8<T>(row + (col / Fmt<T>::elems) * Fmt<T>::bytes, col % Fmt<T>::elems, v);
  float4* o = reinterpret_cast<float4*>(out + int64_t(r) * n_cols + col);
  o[0] = make_float4(v[0], v[1], v[2], v[3]);
  o[1] = make_float4(v[4], v[5], v[6], v[7]);
}

}  // namespace

void dequant_f16(GgmlType t, const void* d_w, int64_t n_in, int64_t n_rows, void* d_out_f16, cudaStream_t s) {
  const int64_t units = n_in * n_rows / 8;
  const int threads = 256;
  const unsigned blocks = unsigned((units + threads - 1) / threads);
  auto* w = static_cast<const uint8_t*>(d_w);
  auto* o = static_cast<__half*>(d_out_f16);
  const int ti = int(t);
  bool launched = false;
  MINNOW_TYPE_SWITCH(ti, k_dequant_f16<TT><<<blocks, threads, 0, s>>>(w, n_in, units, o); launched = true)
  if (!launched) throw Error("cuda: dequant: unsupported type " + std::string(type_name(t)));
  check(cudaGetLastError(), "dequant_f16 launch");
}

void get_rows(GgmlType t, const void* d_table, int n_cols, const int32_t* d_ids, int n, float* d_out,
              cudaStream_t s) {
  if (n <= 0) return;
  const int threads = 128;
  dim3 grid(unsigned((n_cols / 8 + threads - 1) / threads), unsigned(n));
  auto* tb = static_cast<const uint8_t*>(d_table);
  const int ti = int(t);
  bool launched = false;
  MINNOW_TYPE_SWITCH(ti, k_get_rows<TT><<<grid, threads, 0, s>>>(tb, n_cols, d_ids, d_out); launched = true)
  if (!launched) throw Error("cuda: get_rows: unsupported type " + std::string(type_name(t)));
  check(cudaGetLastError(), "get_rows launch");
}

}  // namespace minnow::cuda
