#pragma once
// Random inputs of the op tests (test_ops, test_backend_ops): one generator per test binary, seeded from
// MINNOW_TEST_SEED when set, else from std::random_device; the seed is printed once, so a failing draw can be
// replayed with MINNOW_TEST_SEED=<seed>.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace minnow::test {

inline std::mt19937_64& rng() {
  static std::mt19937_64 r = [] {
    const char* env = std::getenv("MINNOW_TEST_SEED");
    const uint64_t seed = env && *env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
    std::printf("op test inputs: MINNOW_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
    return std::mt19937_64(seed);
  }();
  return r;
}

inline std::vector<float> randv(size_t n, float lo = -2.f, float hi = 2.f) {
  std::uniform_real_distribution<float> U(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = U(rng());
  return v;
}

inline std::vector<double> to_d(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

}  // namespace minnow::test
