#pragma once
// The OpenAI-compatible HTTP server: routes, auth, validation, SSE streaming, health/metrics, shutdown.
// It listens before the model is ready (/health answers 503 until set_ready()).
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "backend/backend.h"
#include "server/connection_guard.h"
#include "server/metrics.h"
#include "server/scheduler.h"
#include "server/server_model.h"

namespace minnow::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;             // 0: any free port (see bind())
  int n_slots = 4;             // --parallel
  int n_ctx = 2048;            // positions per slot
  int max_queue = 64;          // requests waiting for a slot before 429
  int chunk = 64;              // prompt chunk (fixed boundaries)
  int max_prompt_per_step = 256;
  int split_passes = -1;       // see SchedulerOptions (-1 auto, 0 off, 1 on)
  int greedy_shortcut = -1;    // see SchedulerOptions (-1 auto, 0 off, 1 on)
  std::string api_key;         // empty: no auth
  std::string model_id = "minnow";
  double shutdown_grace_s = 10;  // SIGTERM: time in-flight requests get to finish before being cancelled
  ConnLimits conn;             // connection caps and deadlines (server/connection_guard.h)
};

class HttpServer {
 public:
  explicit HttpServer(ServerOptions opt);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int bind();    // binds host:port (port 0 = any); returns the port; throws Error when it cannot
  void start();  // accepts connections on a background thread
  // The model is loaded: from now on generation endpoints work. The server owns both. n_ctx > 0 replaces
  // ServerOptions::n_ctx (the positions per slot the backend really has).
  void set_ready(std::unique_ptr<ServerModel> model, std::unique_ptr<Backend> backend, int n_ctx = 0);
  // Stop accepting generation requests, let in-flight ones finish for up to shutdown_grace_s, cancel the rest,
  // stop listening. Safe to call from any thread, more than once.
  void shutdown();
  void set_step_prompt(int n) { opt_.max_prompt_per_step = n; }  // before set_ready
  void wait();  // until the listener thread has ended (after shutdown())
  Metrics& metrics() { return metrics_; }
  bool ready() const { return ready_.load(); }
  size_t open_connections();  // registered connections (tests)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ServerOptions opt_;
  Metrics metrics_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stopping_{false};
  std::mutex shutdown_mu_;
  std::thread listener_;
};

bool constant_time_equal(const std::string& a, const std::string& b);

}  // namespace minnow::server
