#pragma once
// A fixed pool of worker threads for data-parallel loops. The calling thread takes part as thread 0.
// Workers spin briefly after each job and then sleep on a futex (std::atomic::wait), so back-to-back jobs
// (a forward pass is hundreds of them) start in well under a microsecond. Not reentrant: one job at a time.
#include <cstdint>
#include <functional>
#include <memory>

namespace minnow {

class ThreadPool {
 public:
  // n_threads >= 1 (the caller counts as one). Throws Error when a worker thread cannot be created.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  int size() const;
  // Runs fn(thread_index) on every thread (0..size()-1) and waits for all of them.
  void run(const std::function<void(int thread)>& fn);
  // Splits [0, n) into size() contiguous chunks; fn(begin, end, thread). Waits for all.
  void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end, int thread)>& fn);

  // The allocation-free core: fn(ctx, thread) on every thread. An exception thrown on any thread is
  // rethrown here (the first one) after all threads have finished.
  void run_raw(void (*fn)(void* ctx, int thread), void* ctx);
  // run() for any callable, without building a std::function.
  template <class F>
  void run_each(F&& f) {
    using Fn = std::remove_reference_t<F>;
    run_raw([](void* c, int t) { (*static_cast<Fn*>(c))(t); }, static_cast<void*>(&f));
  }

 private:
  void stop_workers();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace minnow
