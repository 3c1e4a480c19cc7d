#pragma once
// Server metrics: lock-free counters and fixed-bucket histograms, rendered as Prometheus text (GET /metrics).
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace minnow::server {

// A cumulative histogram with fixed upper bounds (seconds), Prometheus-style.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // Appends "# HELP/# TYPE" and the _bucket/_sum/_count lines for `name`.
  void render(std::string& out, const std::string& name, const std::string& help) const;
  uint64_t count() const { return count_.load(); }

 private:
  std::vector<double> bounds_;                      // [n_buckets] upper bounds, increasing
  std::vector<std::atomic<uint64_t>> buckets_;      // [n_buckets + 1] (last = +Inf), non-cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};                 // sum in microseconds (atomic add of integers)
};

struct Metrics {
  Metrics();
  // Requests, by outcome.
  std::atomic<uint64_t> requests_total{0};       // every HTTP request to a /v1 generation endpoint
  std::atomic<uint64_t> requests_ok{0};          // finished normally
  std::atomic<uint64_t> requests_error{0};       // answered with 4xx/5xx
  std::atomic<uint64_t> requests_rejected{0};    // queue full
  std::atomic<uint64_t> requests_cancelled{0};   // client went away / server shutting down
  // Tokens.
  std::atomic<uint64_t> prompt_tokens{0};
  std::atomic<uint64_t> generated_tokens{0};
  std::atomic<uint64_t> forward_passes{0};
  std::atomic<uint64_t> batch_tokens{0};         // tokens over all forward passes
  std::atomic<uint64_t> forward_us{0};           // time inside Backend::forward
  std::atomic<uint64_t> step_us{0};              // time of whole scheduler steps (forward + sampling + bookkeeping)
  // Gauges (kept up to date by the scheduler).
  std::atomic<int64_t> queue_depth{0};
  std::atomic<int64_t> slots_busy{0};
  std::atomic<int64_t> slots_total{0};
  std::atomic<int64_t> http_in_flight{0};
  // Latencies in seconds.
  Histogram ttft;            // request arrival -> first generated token
  Histogram per_token;       // time between consecutive generated tokens of one request
  Histogram request_latency; // request arrival -> finish

  std::string render_prometheus() const;
};

size_t resident_memory_bytes();  // VmRSS of this process (0 if unknown)

}  // namespace minnow::server
