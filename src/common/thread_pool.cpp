#include "common/thread_pool.h"

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace minnow {

struct ThreadPool::Impl {
  int n = 1;
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv_start, cv_done;
  const std::function<void(int)>* job = nullptr;
  uint64_t generation = 0;
  int pending = 0;
  bool stop = false;

  void worker(int idx) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* fn;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_start.wait(lk, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
        fn = job;
      }
      (*fn)(idx);
      std::lock_guard<std::mutex> lk(mu);
      if (--pending == 0) cv_done.notify_one();
    }
  }
};

ThreadPool::ThreadPool(int n_threads) : impl_(std::make_unique<Impl>()) {
  impl_->n = n_threads < 1 ? 1 : n_threads;
  for (int i = 1; i < impl_->n; ++i) impl_->workers.emplace_back([this, i] { impl_->worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv_start.notify_all();
  for (auto& t : impl_->workers) t.join();
}

int ThreadPool::size() const { return impl_->n; }

void ThreadPool::run(const std::function<void(int)>& fn) {
  if (impl_->n == 1) {
    fn(0);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(impl_->mu);
    impl_->job = &fn;
    impl_->pending = impl_->n - 1;
    ++impl_->generation;
  }
  impl_->cv_start.notify_all();
  fn(0);
  std::unique_lock<std::mutex> lk(impl_->mu);
  impl_->cv_done.wait(lk, [&] { return impl_->pending == 0; });
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  const int nt = impl_->n;
  run([&](int t) {
    int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    if (begin < end) fn(begin, end, t);
  });
}

}  // namespace minnow
