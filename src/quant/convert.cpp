// Whole-tensor conversions (see convert.h).
#include "quant/convert.h"

#include <string>

#include "common/error.h"
#include "common/thread_pool.h"
#include "quant/quant_ref.h"

namespace minnow {

namespace {
void check_row(GgmlType t, int64_t ne0) {
  const TypeTraits tr = traits(t);
  if (!tr.supported) throw Error(std::string("tensor type ") + tr.name + " is not supported");
  if (ne0 <= 0 || ne0 % tr.block_size != 0)
    throw Error("row length " + std::to_string(ne0) + " is not a multiple of " + tr.name + "'s block size");
}
}  // namespace

std::vector<uint8_t> quantize_tensor(const float* src, GgmlType dst_type, int64_t ne0, int64_t nrows,
                                     ThreadPool& pool) {
  check_row(dst_type, ne0);
  const size_t rb = row_bytes(dst_type, ne0);
  std::vector<uint8_t> out(rb * static_cast<size_t>(nrows));
  pool.parallel_for(nrows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r)
      quantize_row_ref(dst_type, src + r * ne0, out.data() + static_cast<size_t>(r) * rb, ne0);
  });
  return out;
}

std::vector<uint8_t> convert_tensor(GgmlType src_type, const void* src, GgmlType dst_type, int64_t ne0,
                                    int64_t nrows, ThreadPool& pool) {
  check_row(src_type, ne0);
  check_row(dst_type, ne0);
  const size_t rb_in = row_bytes(src_type, ne0), rb_out = row_bytes(dst_type, ne0);
  std::vector<uint8_t> out(rb_out * static_cast<size_t>(nrows));
  const auto* in = static_cast<const uint8_t*>(src);
  pool.parallel_for(nrows, [&](int64_t begin, int64_t end, int) {
    std::vector<float> row(static_cast<size_t>(ne0));
    for (int64_t r = begin; r < end; ++r) {
      dequantize_row_ref(src_type, in + static_cast<size_t>(r) * rb_in, row.data(), ne0);
      quantize_row_ref(dst_type, row.data(), out.data() + static_cast<size_t>(r) * rb_out, ne0);
    }
  });
  return out;
}

std::vector<float> dequantize_tensor(GgmlType src_type, const void* src, int64_t ne0, int64_t nrows,
                                     ThreadPool& pool) {
  check_row(src_type, ne0);
  const size_t rb = row_bytes(src_type, ne0);
  std::vector<float> out(static_cast<size_t>(ne0 * nrows));
  const auto* in = static_cast<const uint8_t*>(src);
  pool.parallel_for(nrows, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r)
      dequantize_row_ref(src_type, in + static_cast<size_t>(r) * rb, out.data() + r * ne0, ne0);
  });
  return out;
}

}  // namespace minnow
