// Micro-benchmarks of matmul() on TinyLlama-1.1B shapes (2 threads by default; MINNOW_BENCH_THREADS).
// Counters: GB/s of weights read (decode) and tok/s-equivalent throughput (prompt batches).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "backend/cpu/matmul.h"
#include "common/membw.h"
#include "common/thread_pool.h"
#include "quant/quant_ref.h"

using namespace minnow;

namespace {

int bench_threads() {
  const char* e = std::getenv("MINNOW_BENCH_THREADS");
  return e ? std::atoi(e) : 2;
}

ThreadPool& pool() {
  static ThreadPool p(bench_threads());
  return p;
}

struct Weights {
  std::vector<uint8_t> data;
};

// Random bytes with small valid fp16 scales would do for speed, but quantized gaussians are as cheap here.
const std::vector<uint8_t>& weights(GgmlType t, int64_t n_in, int64_t n_out) {
  static std::vector<std::pair<std::tuple<int, int64_t, int64_t>, std::vector<uint8_t>>> cache;
  for (auto& [k, v] : cache)
    if (k == std::make_tuple(static_cast<int>(t), n_in, n_out)) return v;
  std::vector<uint8_t> w(row_bytes(t, n_in) * static_cast<size_t>(n_out));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 0.02f);
  std::vector<float> row(static_cast<size_t>(n_in));
  for (int64_t r = 0; r < n_out; ++r) {
    for (auto& f : row) f = nd(rng);
    quantize_row_ref(t, row.data(), w.data() + static_cast<size_t>(r) * row_bytes(t, n_in), n_in);
  }
  cache.emplace_back(std::make_tuple(static_cast<int>(t), n_in, n_out), std::move(w));
  return cache.back().second;
}

void BM_matmul(benchmark::State& st, GgmlType t) {
  const int64_t n_in = st.range(0), n_out = st.range(1), n_batch = st.range(2);
  const auto& w = weights(t, n_in, n_out);
  std::vector<float> x(static_cast<size_t>(n_in * n_batch)), y(static_cast<size_t>(n_out * n_batch));
  std::mt19937 rng(2);
  std::normal_distribution<float> nd(0, 1);
  for (auto& f : x) f = nd(rng);
  for (auto _ : st) {
    matmul(t, w.data(), n_in, n_out, x.data(), y.data(), n_batch, pool());
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(w.size()) * st.iterations() / 1e9,
                                           benchmark::Counter::kIsRate);
  st.counters["tok/s"] =
      benchmark::Counter(static_cast<double>(n_batch) * st.iterations(), benchmark::Counter::kIsRate);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t nb : {1, 512})
    for (auto [i, o] : {std::pair<int64_t, int64_t>{2048, 2048}, {2048, 256}, {2048, 5632}, {5632, 2048}, {2048, 32000}})
      b->Args({i, o, nb});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

void BM_membw(benchmark::State& st) {
  double bw = 0;
  for (auto _ : st) bw = measure_read_bandwidth(pool(), size_t{512} << 20, 3);
  st.counters["GB/s"] = bw / 1e9;
}

}  // namespace

BENCHMARK_CAPTURE(BM_matmul, q4_K, GgmlType::Q4_K)->Apply(shapes);
BENCHMARK_CAPTURE(BM_matmul, q6_K, GgmlType::Q6_K)->Apply(shapes);
BENCHMARK_CAPTURE(BM_matmul, q8_0, GgmlType::Q8_0)->Args({2048, 2048, 1})->Args({2048, 2048, 512})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_matmul, q4_1, GgmlType::Q4_1)->Args({2048, 2048, 1})->Args({2048, 2048, 512})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_membw)->Iterations(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
