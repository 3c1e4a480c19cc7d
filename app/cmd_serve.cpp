// minnow serve: the OpenAI-compatible HTTP server (see docs/server.md).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "app/commands.h"
#include "app/common_model_flags.h"
#include "backend/backend_factory.h"
#include "chat/chat_template.h"
#include "common/args.h"
#include "common/error.h"
#include "common/start_thread.h"
#include "model/model.h"
#include "server/http_server.h"
#include "server/gguf_server_model.h"
#include "tokenizer/tokenizer.h"

namespace minnow {
namespace {

std::string env_or(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : def;
}

// An auto|on|off flag as the scheduler takes it: -1 auto, 1 on, 0 off ("1" and "0" also accepted).
int auto_on_off(const std::string& flag, const std::string& v) {
  if (v == "auto") return -1;
  if (v == "on" || v == "1") return 1;
  if (v == "off" || v == "0") return 0;
  throw Error(flag + " must be auto, on or off (got '" + v + "')");
}

int env_int(const char* name, int def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  int64_t x = parse_int(std::string("(env ") + name + ")", v);
  if (x < INT32_MIN || x > INT32_MAX) throw Error(std::string("env ") + name + ": value out of range");
  return static_cast<int>(x);
}

double env_float(const char* name, double def) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  return parse_float(std::string("(env ") + name + ")", v);
}

std::string basename_no_ext(const std::string& path) {
  std::string b = path.substr(path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  if (b.size() > 5 && b.compare(b.size() - 5, 5, ".gguf") == 0) b.resize(b.size() - 5);
  return b;
}

int cmd_serve(int argc, char** argv) {
  // Every flag also comes from MINNOW_<FLAG>; flags given on the command line win.
  ModelFlags mf;
  mf.model = env_or("MINNOW_MODEL", "");
  mf.threads = env_int("MINNOW_THREADS", 0);
  mf.ctx = env_int("MINNOW_CTX_SIZE", env_int("MINNOW_CTX", -1));
  mf.device = env_or("MINNOW_DEVICE", "auto");
  server::ServerOptions so;
  so.host = env_or("MINNOW_HOST", "127.0.0.1");
  so.port = env_int("MINNOW_PORT", 8080);
  so.n_slots = env_int("MINNOW_PARALLEL", 4);
  so.api_key = env_or("MINNOW_API_KEY", "");
  so.max_queue = env_int("MINNOW_QUEUE", 64);
  so.chunk = env_int("MINNOW_CHUNK", 64);
  so.max_prompt_per_step = env_int("MINNOW_STEP_PROMPT", 0);
  std::string split = env_or("MINNOW_SPLIT_PASSES", "auto");
  std::string greedy = env_or("MINNOW_GREEDY_SHORTCUT", "auto");
  so.shutdown_grace_s = env_float("MINNOW_SHUTDOWN_TIMEOUT", 10.0);
  std::string alias = env_or("MINNOW_ALIAS", "");
  std::string template_file = env_or("MINNOW_CHAT_TEMPLATE_FILE", "");

  ArgParser args("serve");
  mf.add_to(args);
  args.add_string({"--host"}, &so.host, "address to listen on (default 127.0.0.1)");
  args.add_int({"--port"}, &so.port, "port (default 8080; 0 = any free port)");
  args.add_int({"-np", "--parallel"}, &so.n_slots, "sequence slots decoded together (default 4)");
  args.add_string({"--api-key"}, &so.api_key, "require 'Authorization: Bearer KEY' (except /health)");
  args.add_int({"--queue"}, &so.max_queue, "requests that may wait for a slot before 429 (default 64)");
  args.add_int({"--chunk"}, &so.chunk, "prompt chunk size in tokens (default 64)");
  args.add_int({"--step-prompt"}, &so.max_prompt_per_step,
               "prompt tokens per batched step (default 256 on cpu, 1024 on cuda)");
  args.add_float({"--shutdown-timeout"}, &so.shutdown_grace_s,
                 "seconds in-flight requests get on SIGTERM before being cancelled (default 10)");
  args.add_string({"--split-passes"}, &split,
                  "auto, on or off: decode tokens and each prompt chunk as separate forward passes (default auto: "
                  "when the backend's results depend on the pass size and the decode tokens fit an invariant pass)");
  args.add_string({"--greedy-shortcut"}, &greedy,
                  "auto, on or off: temperature-0 requests without logprobs take the backend's top ids instead of "
                  "whole logits rows (default auto: on for cuda, where it saves the logits copy to the host)");
  args.add_int({"--max-connections"}, &so.conn.max_connections,
               "open connections overall; over it the oldest idle one is closed (default 1024)");
  args.add_int({"--max-client-connections"}, &so.conn.max_per_client,
               "open connections from one client address (default 128)");
  args.add_float({"--header-timeout"}, &so.conn.head_timeout_s,
                 "seconds a client gets to send the request line and headers (default 10)");
  args.add_float({"--body-timeout"}, &so.conn.body_timeout_s,
                 "seconds a client gets to send the request body (default 60)");
  args.add_string({"--alias"}, &alias, "model name reported by the API (default: the file name)");
  args.add_string({"--chat-template-file"}, &template_file, "Jinja chat template to use instead of the model's");
  if (!args.parse(argc, argv, 1)) return 0;
  if (mf.model.empty()) throw Error("no model given (use -m FILE or MINNOW_MODEL)");
  if (so.n_slots < 1 || so.n_slots > 1024) throw Error("--parallel must be between 1 and 1024");
  if (so.port < 0 || so.port > 65535) throw Error("--port must be between 0 and 65535");
  if (so.max_queue < 0) throw Error("--queue must be >= 0");
  if (so.chunk < 1 || so.chunk > 4096) throw Error("--chunk must be between 1 and 4096");
  if (so.max_prompt_per_step < 0) throw Error("--step-prompt must be >= 0");
  if (!(so.shutdown_grace_s >= 0)) throw Error("--shutdown-timeout must be >= 0");
  if (so.conn.max_connections < 1 || so.conn.max_connections > 65536)
    throw Error("--max-connections must be between 1 and 65536");
  if (so.conn.max_per_client < 1 || so.conn.max_per_client > so.conn.max_connections)
    throw Error("--max-client-connections must be between 1 and --max-connections");
  if (!(so.conn.head_timeout_s > 0 && so.conn.head_timeout_s <= 3600))
    throw Error("--header-timeout must be in (0, 3600] seconds");
  if (!(so.conn.body_timeout_s > 0 && so.conn.body_timeout_s <= 3600))
    throw Error("--body-timeout must be in (0, 3600] seconds");
  so.split_passes = auto_on_off("--split-passes", split);
  so.greedy_shortcut = auto_on_off("--greedy-shortcut", greedy);
  resolve_device(mf.device);  // unknown device names fail before we listen
  so.model_id = alias.empty() ? basename_no_ext(mf.model) : alias;
  // Bounded read: regular files only (directories, FIFOs and devices are refused with a clear error).
  const std::string template_src = template_file.empty() ? "" : read_template_file(template_file);

  // Signals go to one thread (sigwait); every other thread is created after they are blocked.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);  // internal wake-up
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  LoadedModel lm;  // declared before the server: it must outlive it
  auto server = std::make_unique<server::HttpServer>(so);
  int port = server->bind();
  server->start();
  std::fprintf(stderr, "minnow serve: listening on http://%s:%d (loading %s)\n", so.host.c_str(), port,
               mf.model.c_str());
  std::atomic<bool> quit_signal{false};
  std::thread sig = start_thread("signal handling", [&] {
    int s = 0;
    sigwait(&set, &s);
    if (s == SIGUSR1) return;
    quit_signal = true;
    std::fprintf(stderr, "minnow serve: %s received, shutting down\n", s == SIGINT ? "SIGINT" : "SIGTERM");
    server->shutdown();
  });
  auto stop_signal_thread = [&] {
    if (!quit_signal.load()) pthread_kill(sig.native_handle(), SIGUSR1);
    sig.join();
  };
  try {
    lm = load_model_and_tokenizer(mf);
    build_backend(lm, mf, 2048, so.n_slots);
    if (lm.n_ctx < 2) throw Error("context size too small");
    auto sm = std::make_unique<server::GgufServerModel>(*lm.tok, lm.model->gguf(), so.model_id, template_src);
    std::fprintf(stderr, "minnow serve: ready: %s on %s, %d slots x %d positions, %.0f ms to load\n",
                 so.model_id.c_str(), lm.backend->name().c_str(), so.n_slots, lm.n_ctx, lm.load_ms);
    if (so.max_prompt_per_step == 0) so.max_prompt_per_step = lm.backend->name() == "cpu" ? 256 : 1024;
    server->set_step_prompt(so.max_prompt_per_step);
    // The scheduler gets the context the backend really has (-c may have been clamped to the model's).
    server->set_ready(std::move(sm), std::move(lm.backend), lm.n_ctx);
  } catch (...) {
    server->shutdown();
    server->wait();
    stop_signal_thread();
    throw;
  }
  server->wait();
  stop_signal_thread();
  server.reset();
  std::fprintf(stderr, "minnow serve: stopped\n");
  return 0;
}

}  // namespace

MINNOW_COMMAND("serve", "OpenAI-compatible HTTP server with continuous batching", cmd_serve);

}  // namespace minnow
