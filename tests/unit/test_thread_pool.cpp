// The thread pool: every index covered exactly once, many back-to-back jobs, exceptions propagate.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "common/thread_pool.h"

using namespace minnow;

TEST(ThreadPool, ParallelForCoversEachIndexOnce) {
  for (int nt : {1, 2, 3, 7}) {
    ThreadPool pool(nt);
    EXPECT_EQ(pool.size(), nt);
    for (int64_t n : {0, 1, 5, 100, 1001}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      pool.parallel_for(n, [&](int64_t b, int64_t e, int t) {
        EXPECT_GE(t, 0);
        EXPECT_LT(t, nt);
        for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      });
      for (auto& h : hits) EXPECT_EQ(h.load(), 1);
    }
  }
}

TEST(ThreadPool, ManyBackToBackJobs) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  for (int job = 0; job < 5000; ++job) {
    pool.run_each([&](int t) { total += t + 1; });
  }
  EXPECT_EQ(total.load(), 5000 * (1 + 2 + 3));
  std::vector<int> seen(3, 0);
  pool.run([&](int t) { seen[static_cast<size_t>(t)]++; });
  EXPECT_EQ(seen, std::vector<int>({1, 1, 1}));
}

TEST(ThreadPool, ExceptionsPropagateAndPoolStaysUsable) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run([](int t) {
    if (t == 1) throw std::runtime_error("boom");
  }),
               std::runtime_error);
  EXPECT_THROW(pool.run([](int t) {
    if (t == 0) throw std::runtime_error("boom");
  }),
               std::runtime_error);
  std::atomic<int> n{0};
  pool.run([&](int) { n++; });
  EXPECT_EQ(n.load(), 2);
}
