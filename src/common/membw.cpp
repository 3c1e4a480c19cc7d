#include "common/membw.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error.h"
#include "common/thread_pool.h"

namespace minnow {

namespace {

// XOR of every 64-bit word (8 independent lanes, so the compiler can use wide loads).
uint64_t stream_read(const uint64_t* p, size_t n) {
  uint64_t acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] ^= p[i + l];
  for (; i < n; ++i) acc[0] ^= p[i];
  uint64_t r = 0;
  for (uint64_t a : acc) r ^= a;
  return r;
}

}  // namespace

double measure_read_bandwidth(ThreadPool& pool, size_t buffer_bytes, int passes) {
  const size_t words = buffer_bytes / sizeof(uint64_t);
  void* raw = std::aligned_alloc(4096, words * sizeof(uint64_t));
  if (!raw) throw Error("out of memory allocating the bandwidth test buffer");
  std::unique_ptr<uint64_t, decltype(&std::free)> buf(static_cast<uint64_t*>(raw), &std::free);
  const int nt = pool.size();
  // Each thread fills (and so first-touches) the part it will read.
  pool.run_each([&](int t) {
    const size_t b = words * t / nt, e = words * (t + 1) / nt;
    for (size_t i = b; i < e; ++i) buf.get()[i] = i * 0x9E3779B97F4A7C15ULL;
  });
  std::vector<uint64_t> sink(static_cast<size_t>(nt));
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run_each([&](int t) {
      const size_t b = words * t / nt, e = words * (t + 1) / nt;
      sink[static_cast<size_t>(t)] ^= stream_read(buf.get() + b, e - b);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / s);
  }
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep ^ v;
  (void)keep;
  return best;
}

}  // namespace minnow
