#include "server/http_server.h"

#include <sys/socket.h>

#include <chrono>
#include <optional>
#include <httplib.h>

#include "common/error.h"
#include "common/start_thread.h"
#include "server/conn_probe.h"
#include "server/generation.h"
#include "server/openai_api.h"

namespace minnow::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

bool constant_time_equal(const std::string& a, const std::string& b) {
  // Runs over the longer string whatever the contents, so timing reveals at most the lengths.
  size_t n = std::max(a.size(), b.size());
  volatile unsigned char diff = static_cast<unsigned char>(a.size() != b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ y));
  }
  return diff == 0;
}

namespace {

// The connection currently served by this thread (httplib runs a connection's handlers on the thread that
// reads it), so routing and handlers can move its phase on.
thread_local Conn* tl_conn = nullptr;

// httplib's server with our connection handling: ConnStream (deadlines), ConnectionTable (caps, eviction).
struct Svr : httplib::Server {
  explicit Svr(const ConnLimits& lim) : limits(lim), table(lim) {}
  ConnLimits limits;
  ConnectionTable table;

  // httplib's listen backlog is compiled into Debian's library (5); many simultaneous clients need more.
  void raise_backlog(int n) {
    auto s = svr_sock_.load();
    if (s != INVALID_SOCKET) ::listen(s, n);
  }

  // Replaces httplib's keep-alive loop (run on one of ConnThreads' threads for each accepted socket).
  bool process_and_close_socket(socket_t sock) override {
    auto c = std::make_shared<Conn>();
    c->fd = sock;
    peer_of(sock, c->ip, c->port);
    bool ret = false;
    auto admitted = table.admit(c);
    if (admitted != ConnectionTable::Admit::Ok) {
      ApiError e = admitted == ConnectionTable::Admit::TooManyFromClient
                       ? ApiError(429, "too many open connections from this client", "rate_limit_error", "",
                                  "too_many_connections")
                       : ApiError(503, "the server has too many open connections", "unavailable_error", "",
                                  "too_many_connections");
      send_refusal(sock, e.status, dump_json(error_body(e)));
    } else {
      ConnStream strm(*c, limits.io_timeout_s);
      tl_conn = c.get();
      const auto ms = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
      for (size_t left = std::max<size_t>(1, keep_alive_max_count_); left > 0 && svr_sock_ != INVALID_SOCKET; --left) {
        table.set_phase(*c, ConnPhase::Idle);
        if (!strm.wait_readable(static_cast<int>(ms(limits.idle_timeout_s).count())) || table.evicted(*c)) break;
        table.set_phase(*c, ConnPhase::Head);
        c->has_deadline = true;
        c->deadline = Clock::now() + ms(limits.head_timeout_s);
        bool closed = false;
        ret = process_request(strm, left == 1, closed, nullptr);
        if (!ret || closed || strm.timed_out()) break;
      }
      tl_conn = nullptr;
      table.release(c);
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ret;
  }
};

// Routing has read the headers: the body (if any) gets its own deadline.
void enter_body_phase(Svr& svr) {
  if (!tl_conn) return;
  svr.table.set_phase(*tl_conn, ConnPhase::Body);
  tl_conn->has_deadline = true;
  tl_conn->deadline = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(svr.limits.body_timeout_s * 1000));
}

// A handler runs: the request is complete; the connection is no longer evictable and reads have no deadline.
void enter_busy_phase(Svr& svr) {
  if (!tl_conn) return;
  svr.table.set_phase(*tl_conn, ConnPhase::Busy);
  tl_conn->has_deadline = false;
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump_json(error_body(e)), "application/json");
}

bool sse(httplib::DataSink& sink, const json& j) {
  std::string s = "data: " + dump_json(j) + "\n\n";
  return sink.write(s.data(), s.size());
}

struct StreamState {
  bool first = true;
  Clock::time_point last_write = Clock::now();
};

// One call of a streaming response's content provider: waits briefly for the job's next events and writes
// them as SSE. Returns false to end the stream (client gone); calls sink.done() after [DONE].
bool stream_step(GenerationJob& job, const ResponseBuilder& rb, StreamState& st, bool with_lp, bool include_usage,
                 bool chat, httplib::DataSink& sink) {
  if (st.first && chat) {
    st.first = false;
    st.last_write = Clock::now();
    if (!sse(sink, rb.chunk("", {}, false, nullptr, true, include_usage))) {
      job.cancel();
      return false;
    }
  }
  st.first = false;
  auto ev = job.wait(std::chrono::milliseconds(250));
  if (!ev) {
    // Nothing new: see whether the client is still there (a comment line is ignored by SSE clients).
    if (!sink.is_writable()) {
      job.cancel();
      return false;
    }
    if (Clock::now() - st.last_write > std::chrono::seconds(2)) {
      static const char ping[] = ": ping\n\n";
      st.last_write = Clock::now();
      if (!sink.write(ping, sizeof ping - 1)) {
        job.cancel();
        return false;
      }
    }
    return true;
  }
  bool ok = true;
  if (!ev->text.empty() || (!ev->tokens.empty() && with_lp)) {
    ok = sse(sink, rb.chunk(ev->text, ev->tokens, with_lp, nullptr, false, include_usage));
    st.last_write = Clock::now();
  }
  if (ok && ev->finished) {
    if (ev->reason == FinishReason::Error || ev->reason == FinishReason::Cancelled) {
      ApiError e = ev->reason == FinishReason::Error
                       ? ApiError(500, "generation failed: " + ev->error, "server_error")
                       : ApiError(503, "the request was cancelled", "unavailable_error", "", "cancelled");
      ok = sse(sink, error_body(e));
    } else {
      ok = sse(sink, rb.chunk("", {}, false, finish_reason_name(ev->reason), false, include_usage));
      if (ok && include_usage) ok = sse(sink, rb.usage_chunk(job.n_prompt(), job.n_generated()));
    }
    static const char done[] = "data: [DONE]\n\n";
    if (ok) ok = sink.write(done, sizeof done - 1);
    if (ok) sink.done();
  }
  if (!ok) job.cancel();
  return ok;
}

}  // namespace

struct HttpServer::Impl {
  explicit Impl(const ConnLimits& lim) : svr(lim) {}
  Svr svr;
  std::unique_ptr<ServerModel> model;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Scheduler> scheduler;
  bool started = false;
  bool shut = false;
};

HttpServer::HttpServer(ServerOptions opt) : impl_(std::make_unique<Impl>(opt.conn)), opt_(std::move(opt)) {
  auto& svr = impl_->svr;
  // One thread per open connection (plus a few to answer refusals), started on demand.
  const size_t threads = static_cast<size_t>(std::max(1, opt_.conn.max_connections)) + 16;
  svr.new_task_queue = [this, threads] {
    return new ConnThreads(threads, [this] { return impl_->svr.table.evict_one(); },
                           [this] { impl_->svr.table.evict_all_idle(); });
  };
  svr.set_payload_max_length(16u << 20);
  // httplib puts these on each accepted socket (SO_RCVTIMEO / SO_SNDTIMEO): a blocking send that makes no
  // progress gives up after the same time ConnStream waits for a writable socket.
  const auto io_s = static_cast<time_t>(std::max(1.0, opt_.conn.io_timeout_s));
  svr.set_read_timeout(io_s);
  svr.set_write_timeout(io_s);
  svr.set_tcp_nodelay(true);
  metrics_.slots_total.store(opt_.n_slots);

  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    enter_body_phase(impl_->svr);
    // Responses go out uncompressed so that streamed events are written (and disconnects seen) at once.
    // The Request object handed to us is httplib's own non-const one.
    auto& mreq = const_cast<httplib::Request&>(req);
    mreq.headers.erase("Accept-Encoding");
    // Every body we take is JSON. `curl -d` labels it form-urlencoded, which httplib would cap at 8 KiB
    // (a limit compiled into Debian's library): relabel it before the body is read.
    if (req.get_header_value("Content-Type").rfind("application/x-www-form-urlencoded", 0) == 0) {
      mreq.headers.erase("Content-Type");
      mreq.headers.emplace("Content-Type", "application/json");
    }
    if (!opt_.api_key.empty() && req.path != "/health") {
      std::string h = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      std::string tok = h.compare(0, prefix.size(), prefix) == 0 ? h.substr(prefix.size()) : std::string();
      if (!constant_time_equal(tok, opt_.api_key)) {
        send_error(res, ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')",
                                 "authentication_error", "", "invalid_api_key"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string msg = res.status == 404   ? "no such endpoint: " + req.method + " " + req.path
                      : res.status == 413 ? std::string("request body too large (limit 16 MiB)")
                      : res.status == 405 ? std::string("method not allowed")
                                          : std::string("HTTP error ") + std::to_string(res.status);
    send_error(res, ApiError(res.status, msg, res.status == 404 ? "not_found_error" : "invalid_request_error"));
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, ApiError(500, "internal server error", "server_error"));
  });

  // Every handler answers user mistakes with an OpenAI-style error and never lets an exception escape.
  auto wrap = [this](std::function<void(const httplib::Request&, httplib::Response&)> fn) {
    return [this, fn](const httplib::Request& req, httplib::Response& res) {
      enter_busy_phase(impl_->svr);
      metrics_.http_in_flight.fetch_add(1);
      try {
        fn(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const Error& e) {
        send_error(res, ApiError(400, e.what()));
      } catch (const std::bad_alloc&) {
        send_error(res, ApiError(500, "out of memory", "server_error"));
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, std::string("internal error: ") + e.what(), "server_error"));
      } catch (...) {
        send_error(res, ApiError(500, "internal error", "server_error"));
      }
      metrics_.http_in_flight.fetch_sub(1);
    };
  };

  svr.Get("/health", wrap([this](const httplib::Request&, httplib::Response& res) {
    if (stopping_.load()) {
      res.status = 503;
      res.set_content(dump_json({{"status", "shutting down"}}), "application/json");
    } else if (!ready_.load()) {
      res.status = 503;
      res.set_content(dump_json({{"status", "loading model"}}), "application/json");
    } else {
      res.set_content(dump_json({{"status", "ok"}}), "application/json");
    }
  }));
  svr.Get("/metrics", wrap([this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.render_prometheus(), "text/plain; version=0.0.4");
  }));
  svr.Get("/v1/models", wrap([this](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", opt_.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "minnow"}};
    res.set_content(dump_json({{"object", "list"}, {"data", json::array({m})}}), "application/json");
  }));
  svr.Post("/tokenize", wrap([this](const httplib::Request& req, httplib::Response& res) {
    if (!ready_.load()) throw ApiError(503, "the model is still loading", "unavailable_error", "", "model_loading");
    json b = parse_json_object(req.body);
    if (!b.contains("content") || !b["content"].is_string())
      throw ApiError(400, "'content' must be a string", "invalid_request_error", "content", "invalid_type");
    auto flag = [&](const char* k, bool def) {
      if (!b.contains(k) || b[k].is_null()) return def;
      if (!b[k].is_boolean()) throw ApiError(400, std::string("'") + k + "' must be a boolean", "invalid_request_error", k, "invalid_type");
      return b[k].get<bool>();
    };
    bool add_special = flag("add_special", false), parse_special = flag("parse_special", true);
    bool with_pieces = flag("with_pieces", false);
    auto toks = impl_->model->tokenize(b["content"].get<std::string>(), add_special, parse_special);
    json arr = json::array();
    for (int32_t t : toks) {
      if (with_pieces) arr.push_back({{"id", t}, {"piece", impl_->model->token_to_piece(t)}});
      else arr.push_back(t);
    }
    res.set_content(dump_json({{"tokens", arr}}), "application/json");
  }));
  svr.Post("/detokenize", wrap([this](const httplib::Request& req, httplib::Response& res) {
    if (!ready_.load()) throw ApiError(503, "the model is still loading", "unavailable_error", "", "model_loading");
    json b = parse_json_object(req.body);
    if (!b.contains("tokens") || !b["tokens"].is_array())
      throw ApiError(400, "'tokens' must be an array of token ids", "invalid_request_error", "tokens", "invalid_type");
    int n_vocab = impl_->model->n_vocab();
    std::string out;
    for (const auto& t : b["tokens"]) {
      if (!t.is_number_integer())
        throw ApiError(400, "'tokens' must hold integers", "invalid_request_error", "tokens", "invalid_type");
      bool neg = !t.is_number_unsigned() && t.get<int64_t>() < 0;
      if (neg || t.get<uint64_t>() >= static_cast<uint64_t>(n_vocab))
        throw ApiError(400, "token id out of range [0, " + std::to_string(n_vocab) + ")", "invalid_request_error",
                       "tokens", "invalid_token");
      out += impl_->model->token_to_piece(static_cast<int32_t>(t.get<int64_t>()));
    }
    res.set_content(dump_json({{"content", out}}), "application/json");
  }));

  auto generate = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res) {
      auto arrival = Clock::now();
      metrics_.requests_total.fetch_add(1);
      bool submitted = false;  // after submit, the job's own finish counts the outcome
      try {
        if (stopping_.load()) throw ApiError(503, "the server is shutting down", "unavailable_error", "", "shutting_down");
        if (!ready_.load()) throw ApiError(503, "the model is still loading", "unavailable_error", "", "model_loading");
        json body = parse_json_object(req.body);
        ParsedRequest pr = chat ? parse_chat_request(body, *impl_->model, opt_.n_ctx)
                                : parse_completion_request(body, *impl_->model, opt_.n_ctx);
        if (pr.echo) throw ApiError(400, "'echo' is not supported", "invalid_request_error", "echo", "unsupported_value");
        auto job = std::make_shared<GenerationJob>(std::move(pr.gen), *impl_->model, &metrics_, arrival);
        switch (impl_->scheduler->submit(job)) {
          case Scheduler::Submit::Ok: submitted = true; break;
          case Scheduler::Submit::QueueFull:
            metrics_.requests_rejected.fetch_add(1);
            throw ApiError(429, "the server is busy (request queue full); retry later", "rate_limit_error", "",
                           "queue_full");
          case Scheduler::Submit::Stopped:
            throw ApiError(503, "the server is shutting down", "unavailable_error", "", "shutting_down");
          case Scheduler::Submit::Invalid:
            throw ApiError(400, "the prompt is empty or longer than the context", "invalid_request_error", "",
                           "context_length_exceeded");
        }
        auto rb = std::make_shared<ResponseBuilder>(chat, opt_.model_id, *impl_->model);
        bool with_lp = pr.logprobs;
        if (!pr.stream) {
          std::string text;
          std::vector<TokenInfo> toks;
          GenEvent last;
          std::optional<ConnProbe> probe;  // looked up only for requests that take a while
          auto next_check = Clock::now() + std::chrono::milliseconds(250);
          for (;;) {
            auto ev = job->wait(std::chrono::milliseconds(250), /*until_finished=*/true);
            // The scheduler always finishes every job (cancel_all on shutdown); meanwhile, watch the client.
            if (Clock::now() >= next_check) {
              next_check = Clock::now() + std::chrono::milliseconds(250);
              if (!probe) probe.emplace(req.remote_addr, req.remote_port, req.local_port);
              if (!job->cancelled() && !probe->alive()) job->cancel();
            }
            if (!ev) continue;
            text += ev->text;
            for (auto& t : ev->tokens) toks.push_back(std::move(t));
            if (ev->finished) {
              last = std::move(*ev);
              break;
            }
          }
          if (last.reason == FinishReason::Error)
            throw ApiError(500, "generation failed: " + last.error, "server_error");
          if (last.reason == FinishReason::Cancelled)
            throw ApiError(503, "the request was cancelled (client gone or server shutting down)", "unavailable_error", "", "cancelled");
          res.set_content(dump_json(rb->full(text, toks, with_lp, finish_reason_name(last.reason), job->n_prompt(),
                                             job->n_generated())),
                          "application/json");
          return;
        }
        // Streaming: Server-Sent Events, one chunk per batch of new text, then [DONE].
        auto st = std::make_shared<StreamState>();
        bool include_usage = pr.include_usage;
        res.set_header("Cache-Control", "no-cache");
        res.set_chunked_content_provider(
            "text/event-stream",
            [job, rb, st, with_lp, include_usage, chat](size_t, httplib::DataSink& sink) -> bool {
              // Nothing may escape into httplib's writer: any failure ends this stream and frees the slot.
              try {
                return stream_step(*job, *rb, *st, with_lp, include_usage, chat, sink);
              } catch (...) {
                job->cancel();
                return false;
              }
            },
            [job](bool) { job->cancel(); });  // no-op once finished; frees the slot if the client left
      } catch (...) {
        if (!submitted) metrics_.requests_error.fetch_add(1);
        throw;
      }
    };
  };
  svr.Post("/v1/chat/completions", wrap(generate(true)));
  svr.Post("/v1/completions", wrap(generate(false)));
  svr.Post("/chat/completions", wrap(generate(true)));
  svr.Post("/completions", wrap(generate(false)));
}

HttpServer::~HttpServer() {
  shutdown();
  wait();
  impl_->scheduler.reset();
  impl_->backend.reset();
  impl_->model.reset();
}

int HttpServer::bind() {
  int port = opt_.port;
  if (port == 0) {
    port = impl_->svr.bind_to_any_port(opt_.host);
    if (port <= 0) throw Error("cannot listen on " + opt_.host + " (any port)");
  } else if (!impl_->svr.bind_to_port(opt_.host, port)) {
    throw Error("cannot listen on " + opt_.host + ":" + std::to_string(port) + " (in use or not allowed)");
  }
  impl_->svr.raise_backlog(1024);
  opt_.port = port;
  return port;
}

void HttpServer::start() {
  impl_->started = true;
  listener_ = start_thread("HTTP listener", [this] { impl_->svr.listen_after_bind(); });
}

void HttpServer::set_ready(std::unique_ptr<ServerModel> model, std::unique_ptr<Backend> backend, int n_ctx) {
  if (n_ctx > 0) opt_.n_ctx = n_ctx;
  SchedulerOptions so;
  so.n_slots = opt_.n_slots;
  so.n_ctx = opt_.n_ctx;
  so.n_vocab = model->n_vocab();
  so.max_queue = opt_.max_queue;
  so.chunk = opt_.chunk;
  so.max_prompt_per_step = opt_.max_prompt_per_step;
  so.split_passes = opt_.split_passes;
  so.greedy_shortcut = opt_.greedy_shortcut;
  impl_->model = std::move(model);
  impl_->backend = std::move(backend);
  impl_->scheduler = std::make_unique<Scheduler>(*impl_->backend, so, &metrics_);
  ready_.store(true);
}

void HttpServer::shutdown() {
  std::lock_guard<std::mutex> lk(shutdown_mu_);
  if (impl_->shut) return;
  impl_->shut = true;
  stopping_.store(true);
  if (ready_.load()) {
    impl_->model->cancel_renders();  // a chat-template render in progress stops now, not at its time budget
    auto deadline = Clock::now() + std::chrono::duration<double>(opt_.shutdown_grace_s);
    while (!impl_->scheduler->idle() && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    impl_->scheduler->cancel_all();
    auto hard = Clock::now() + std::chrono::seconds(5);
    while (!impl_->scheduler->idle() && Clock::now() < hard)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // Let handlers that just got their final event write it out.
  auto until = Clock::now() + std::chrono::seconds(2);
  while (metrics_.http_in_flight.load() > 0 && Clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (impl_->started) {
    auto t = Clock::now() + std::chrono::seconds(2);
    while (!impl_->svr.is_running() && Clock::now() < t) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  impl_->svr.stop();
}

size_t HttpServer::open_connections() { return impl_->svr.table.size(); }

void HttpServer::wait() {
  if (listener_.joinable()) listener_.join();
}

}  // namespace minnow::server
