#pragma once
// A fixed pool of worker threads for data-parallel loops. The calling thread takes part as thread 0.
#include <cstdint>
#include <functional>
#include <memory>

namespace minnow {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads >= 1 (the caller counts as one)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  int size() const;
  // Runs fn(thread_index) on every thread (0..size()-1) and waits for all of them.
  void run(const std::function<void(int thread)>& fn);
  // Splits [0, n) into size() contiguous chunks; fn(begin, end, thread). Waits for all.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end, int thread)>& fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace minnow
