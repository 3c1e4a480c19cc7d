#include "server/metrics.h"

#include <cmath>
#include <cstdio>
#include <fstream>

namespace minnow::server {

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {
  for (auto& b : buckets_) b.store(0);
}

void Histogram::observe(double v) {
  if (!std::isfinite(v) || v < 0) v = 0;
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1);
  count_.fetch_add(1);
  sum_us_.fetch_add(static_cast<uint64_t>(v * 1e6));
}

static std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cum = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cum += buckets_[i].load();
    out += name + "_bucket{le=\"" + fmt_double(bounds_[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  cum += buckets_.back().load();
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cum) + "\n";
  out += name + "_sum " + fmt_double(static_cast<double>(sum_us_.load()) / 1e6) + "\n";
  out += name + "_count " + std::to_string(count_.load()) + "\n";
}

static std::vector<double> latency_bounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

Metrics::Metrics() : ttft(latency_bounds()), per_token(latency_bounds()), request_latency(latency_bounds()) {}

static void counter(std::string& out, const std::string& name, const std::string& help, uint64_t v) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + std::to_string(v) + "\n";
}
static void gauge(std::string& out, const std::string& name, const std::string& help, int64_t v) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + std::to_string(v) + "\n";
}

static void out_seconds(std::string& out, const std::string& name, const std::string& help, uint64_t us) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " +
         fmt_double(static_cast<double>(us) / 1e6) + "\n";
}

std::string Metrics::render_prometheus() const {
  std::string o;
  counter(o, "minnow_requests_total", "Generation requests received.", requests_total.load());
  counter(o, "minnow_requests_success_total", "Generation requests that finished normally.", requests_ok.load());
  counter(o, "minnow_requests_error_total", "Generation requests answered with an error status.", requests_error.load());
  counter(o, "minnow_requests_rejected_total", "Requests rejected because the queue was full.", requests_rejected.load());
  counter(o, "minnow_requests_cancelled_total", "Requests cancelled (client disconnect or shutdown).",
          requests_cancelled.load());
  counter(o, "minnow_prompt_tokens_total", "Prompt tokens processed.", prompt_tokens.load());
  counter(o, "minnow_generated_tokens_total", "Tokens generated.", generated_tokens.load());
  counter(o, "minnow_forward_passes_total", "Batched forward passes run by the scheduler.", forward_passes.load());
  counter(o, "minnow_batch_tokens_total", "Tokens over all forward passes.", batch_tokens.load());
  out_seconds(o, "minnow_forward_seconds_total", "Time spent in the backend's forward passes.", forward_us.load());
  out_seconds(o, "minnow_step_seconds_total", "Time of whole scheduler steps (forward, sampling, bookkeeping).",
              step_us.load());
  gauge(o, "minnow_queue_depth", "Requests waiting for a slot.", queue_depth.load());
  int64_t busy = slots_busy.load(), total = slots_total.load();
  gauge(o, "minnow_slots_busy", "Sequence slots in use.", busy);
  gauge(o, "minnow_slots_free", "Sequence slots free.", total - busy);
  gauge(o, "minnow_slots_total", "Sequence slots (--parallel).", total);
  gauge(o, "minnow_http_requests_in_flight", "HTTP requests being handled.", http_in_flight.load());
  gauge(o, "process_resident_memory_bytes", "Resident memory of the server process.",
        static_cast<int64_t>(resident_memory_bytes()));
  ttft.render(o, "minnow_time_to_first_token_seconds", "Request arrival to first generated token.");
  per_token.render(o, "minnow_time_per_output_token_seconds", "Time between consecutive generated tokens.");
  request_latency.render(o, "minnow_request_duration_seconds", "Request arrival to completion.");
  return o;
}

size_t resident_memory_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      unsigned long long kb = 0;
      if (std::sscanf(line.c_str() + 6, "%llu", &kb) == 1) return static_cast<size_t>(kb) * 1024;
    }
  }
  return 0;
}

}  // namespace minnow::server
