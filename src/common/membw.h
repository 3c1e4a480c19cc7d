#pragma once
// The machine's memory read bandwidth, measured: every pool thread streams through its share of a buffer
// far larger than the caches; the best of a few passes counts.
#include <cstddef>

namespace minnow {

class ThreadPool;

// Bytes per second.
double measure_read_bandwidth(ThreadPool& pool, size_t buffer_bytes = size_t{512} << 20, int passes = 5);

}  // namespace minnow
