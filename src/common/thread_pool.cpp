#include "common/thread_pool.h"

#include "common/error.h"

#include <atomic>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MINNOW_CPU_RELAX() _mm_pause()
#else
#define MINNOW_CPU_RELAX() ((void)0)
#endif

namespace minnow {

namespace {
// Pause iterations before sleeping; every 64th iteration yields the core so an oversubscribed machine
// (more threads than free cores) still makes progress.
constexpr int kSpin = 1 << 13;
inline void relax(int i) {
  if ((i & 63) == 63) {
    std::this_thread::yield();
  } else {
    MINNOW_CPU_RELAX();
  }
}
}  // namespace

struct ThreadPool::Impl {
  int n = 1;
  std::vector<std::thread> workers;
  alignas(64) std::atomic<uint32_t> generation{0};
  alignas(64) std::atomic<int> pending{0};
  void (*fn)(void*, int) = nullptr;
  void* ctx = nullptr;
  bool stop = false;  // written before a generation bump
  std::mutex err_mu;
  std::exception_ptr err;

  void call(int idx) {
    try {
      fn(ctx, idx);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu);
      if (!err) err = std::current_exception();
    }
  }

  void worker(int idx) {
    uint32_t seen = 0;
    for (;;) {
      uint32_t g = generation.load(std::memory_order_acquire);
      for (int i = 0; g == seen && i < kSpin; ++i) {
        relax(i);
        g = generation.load(std::memory_order_acquire);
      }
      while (g == seen) {
        generation.wait(seen, std::memory_order_acquire);
        g = generation.load(std::memory_order_acquire);
      }
      seen = g;
      if (stop) return;
      call(idx);
      if (pending.fetch_sub(1, std::memory_order_acq_rel) == 1) pending.notify_one();
    }
  }
};

ThreadPool::ThreadPool(int n_threads) : impl_(std::make_unique<Impl>()) {
  impl_->n = n_threads < 1 ? 1 : n_threads;
  for (int i = 1; i < impl_->n; ++i) {
    try {
      impl_->workers.emplace_back([this, i] { impl_->worker(i); });
    } catch (const std::system_error& e) {
      // The workers already started must be joined before their std::thread objects go away (otherwise
      // std::terminate); then the failure becomes an ordinary one-line error.
      stop_workers();
      throw Error("cannot start CPU worker thread " + std::to_string(i) + " of " + std::to_string(impl_->n) +
                  " (" + e.what() + "); try fewer threads (-t)");
    }
  }
}

void ThreadPool::stop_workers() {
  impl_->stop = true;
  impl_->generation.fetch_add(1, std::memory_order_release);
  impl_->generation.notify_all();
  for (auto& t : impl_->workers) t.join();
  impl_->workers.clear();
}

ThreadPool::~ThreadPool() { stop_workers(); }

int ThreadPool::size() const { return impl_->n; }

void ThreadPool::run_raw(void (*fn)(void*, int), void* ctx) {
  Impl& m = *impl_;
  m.fn = fn;
  m.ctx = ctx;
  m.err = nullptr;
  if (m.n > 1) {
    m.pending.store(m.n - 1, std::memory_order_relaxed);
    m.generation.fetch_add(1, std::memory_order_release);
    m.generation.notify_all();
  }
  m.call(0);
  if (m.n > 1) {
    int p = m.pending.load(std::memory_order_acquire);
    for (int i = 0; p != 0 && i < kSpin; ++i) {
      relax(i);
      p = m.pending.load(std::memory_order_acquire);
    }
    while (p != 0) {
      m.pending.wait(p, std::memory_order_acquire);
      p = m.pending.load(std::memory_order_acquire);
    }
  }
  if (m.err) {
    std::exception_ptr e = m.err;
    m.err = nullptr;
    std::rethrow_exception(e);
  }
}

void ThreadPool::run(const std::function<void(int)>& fn) {
  run_each([&](int t) { fn(t); });
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  const int nt = impl_->n;
  run_each([&](int t) {
    int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    if (begin < end) fn(begin, end, t);
  });
}

}  // namespace minnow
