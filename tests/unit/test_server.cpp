// The HTTP server end to end over loopback, with a fake model and backend: OpenAI shapes, SSE, validation
// errors, auth, queue limits, disconnects, shutdown, and no crash on arbitrary bodies.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <future>
#include <random>
#include <thread>

#include "server/http_server.h"
#include "test_server_fakes.h"

using namespace minnow;
using namespace minnow::server;
using namespace minnow::testing_fakes;
using nlohmann::json;

namespace {

struct Harness {
  ServerOptions opt;
  FakeBackend* be = nullptr;
  std::unique_ptr<HttpServer> srv;
  int port = 0;
  explicit Harness(ServerOptions o = {}, bool ready = true, int delay_ms = 0) : opt(std::move(o)) {
    opt.host = "127.0.0.1";
    opt.port = 0;
    opt.model_id = "fake-model";
    if (opt.chunk == 64) opt.chunk = 8;  // small chunks so prompts really get cut
    srv = std::make_unique<HttpServer>(opt);
    port = srv->bind();
    srv->start();
    if (ready) make_ready(delay_ms);
  }
  void make_ready(int delay_ms = 0) {
    auto b = std::make_unique<FakeBackend>(opt.n_slots, opt.n_ctx);
    b->delay_ms = delay_ms;
    be = b.get();
    srv->set_ready(std::make_unique<FakeModel>(), std::move(b));
  }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
    c->set_read_timeout(30, 0);
    c->set_connection_timeout(5, 0);
    return c;
  }
  httplib::Result post(const std::string& path, const std::string& body,
                       const httplib::Headers& h = {}) const {
    return client()->Post(path.c_str(), h, body, "application/json");
  }
  httplib::Result get(const std::string& path, const httplib::Headers& h = {}) const {
    return client()->Get(path.c_str(), h);
  }
  int64_t metric(const std::string& name) const {
    auto r = get("/metrics");
    if (!r || r->status != 200) return -1;
    std::istringstream in(r->body);
    std::string line;
    while (std::getline(in, line))
      if (line.rfind(name + " ", 0) == 0) return std::stoll(line.substr(name.size() + 1));
    return -1;
  }
};

json chat_body(const std::string& user, int max_tokens, double temperature = 0) {
  return {{"model", "whatever"},
          {"messages", json::array({{{"role", "system"}, {"content", "be brief"}}, {{"role", "user"}, {"content", user}}})},
          {"max_tokens", max_tokens},
          {"temperature", temperature}};
}

std::vector<int32_t> chat_prompt_of(const json& body) {
  FakeModel m;
  json msgs = json::array();
  for (auto& x : body["messages"]) msgs.push_back({{"role", x["role"]}, {"content", x["content"]}});
  return m.chat_prompt(msgs);
}

void expect_error_shape(const httplib::Result& r, int status) {
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, status) << r->body;
  json j = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << r->body;
  ASSERT_TRUE(j.contains("error")) << r->body;
  const json& e = j["error"];
  EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
  EXPECT_TRUE(e["type"].is_string());
  EXPECT_TRUE(e.contains("param"));
  EXPECT_TRUE(e.contains("code"));
}

// Reads an SSE response body into its data payloads.
std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < body.size()) {
    size_t e = body.find("\n\n", i);
    if (e == std::string::npos) break;
    std::string ev = body.substr(i, e - i);
    if (ev.rfind("data: ", 0) == 0) out.push_back(ev.substr(6));
    i = e + 2;
  }
  return out;
}

httplib::Result post_stream(const Harness& h, const std::string& path, const json& body, std::string* raw) {
  auto c = h.client();
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [raw](const char* d, size_t n, uint64_t, uint64_t) {
    raw->append(d, n);
    return true;
  };
  return c->send(req);
}

int raw_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

template <class F>
bool eventually(F f, int ms = 10000) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return f();
}

}  // namespace

TEST(Server, HealthIsLoadingThenReady) {
  Harness h({}, /*ready=*/false);
  auto r = h.get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  expect_error_shape(h.post("/v1/chat/completions", chat_body("hi", 4).dump()), 503);
  h.make_ready();
  r = h.get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["status"], "ok");
}

TEST(Server, ChatCompletionMatchesReference) {
  Harness h;
  json body = chat_body("tell me something", 21);
  auto r = h.post("/v1/chat/completions", body.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  auto prompt = chat_prompt_of(body);
  auto want = reference_greedy(prompt, 21, h.opt.chunk, h.opt.n_ctx);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "fake-model");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], detok(want));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 21);
  EXPECT_EQ(j["usage"]["total_tokens"], prompt.size() + 21);
  // max_completion_tokens wins over max_tokens.
  body["max_completion_tokens"] = 3;
  r = h.post("/v1/chat/completions", body.dump());
  ASSERT_TRUE(r);
  EXPECT_EQ(json::parse(r->body)["usage"]["completion_tokens"], 3);
}

TEST(Server, StreamingEqualsNonStreamingAndEndsWithDone) {
  Harness h;
  json body = chat_body("stream please", 17);
  auto full = json::parse(h.post("/v1/chat/completions", body.dump())->body);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  std::string raw;
  auto r = post_stream(h, "/v1/chat/completions", body, &raw);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  auto ev = sse_payloads(raw);
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev.back(), "[DONE]");
  std::string text;
  std::string finish;
  json usage;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    json c = json::parse(ev[i]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    if (c["choices"].empty()) {
      usage = c["usage"];
      continue;
    }
    auto& d = c["choices"][0]["delta"];
    if (i == 0) {
      EXPECT_EQ(d["role"], "assistant");
    }
    if (d.contains("content")) text += d["content"].get<std::string>();
    if (!c["choices"][0]["finish_reason"].is_null()) finish = c["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(text, full["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, "length");
  EXPECT_EQ(usage, full["usage"]);
}

TEST(Server, CompletionsWithTokenIdsAndText) {
  Harness h;
  std::vector<int32_t> ids = {'a', 'b', 'c', ' ', 'd', 'e', 'f', 'g', 'h', 'i', 'j'};
  auto r = h.post("/v1/completions", json{{"prompt", ids}, {"max_tokens", 9}, {"temperature", 0}}.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], detok(reference_greedy(ids, 9, h.opt.chunk, h.opt.n_ctx)));
  EXPECT_EQ(j["usage"]["prompt_tokens"], ids.size());
  // A string prompt gets BOS (add_special) like the fake tokenizer says.
  r = h.post("/v1/completions", json{{"prompt", "abc"}, {"max_tokens", 4}, {"temperature", 0}}.dump());
  ASSERT_TRUE(r);
  j = json::parse(r->body);
  std::vector<int32_t> p = {kBos, 'a', 'b', 'c'};
  EXPECT_EQ(j["choices"][0]["text"], detok(reference_greedy(p, 4, h.opt.chunk, h.opt.n_ctx)));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);
  // Default max_tokens is 16 for completions.
  r = h.post("/v1/completions", json{{"prompt", "abc"}, {"temperature", 0}}.dump());
  EXPECT_EQ(json::parse(r->body)["usage"]["completion_tokens"], 16);
}

TEST(Server, StopStringCutsOutput) {
  Harness h;
  json body = chat_body("stop test", 40);
  std::string text = json::parse(h.post("/v1/chat/completions", body.dump())->body)["choices"][0]["message"]["content"];
  ASSERT_GE(text.size(), 12u);
  std::string stop = text.substr(8, 3);
  size_t cut = text.find(stop);
  body["stop"] = json::array({"\x01never", stop});
  auto j = json::parse(h.post("/v1/chat/completions", body.dump())->body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], text.substr(0, cut));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  // Same through streaming, with a plain string stop.
  body["stop"] = stop;
  body["stream"] = true;
  std::string raw;
  ASSERT_TRUE(post_stream(h, "/v1/chat/completions", body, &raw));
  std::string streamed;
  for (auto& p : sse_payloads(raw)) {
    if (p == "[DONE]") break;
    auto c = json::parse(p);
    if (c["choices"][0]["delta"].contains("content")) streamed += c["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(streamed, text.substr(0, cut));
}

TEST(Server, EosGivesStop) {
  Harness h;
  h.be->eos_at_pos = 5;  // any prompt longer than that ends at once
  auto j = json::parse(h.post("/v1/completions", json{{"prompt", "0123456789"}, {"max_tokens", 9}}.dump())->body);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][0]["text"], "");
  EXPECT_EQ(j["usage"]["completion_tokens"], 0);
  // ignore_eos (llama-server's extension) generates the full budget anyway.
  j = json::parse(h.post("/v1/completions", json{{"prompt", "0123456789"}, {"max_tokens", 9}, {"ignore_eos", true}, {"temperature", 0}}.dump())->body);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 9);
  EXPECT_EQ(j["choices"][0]["text"].get<std::string>().size(), 9u) << j.dump();
}

TEST(Server, Logprobs) {
  Harness h;
  json body = chat_body("logprobs", 6);
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  auto j = json::parse(h.post("/v1/chat/completions", body.dump())->body);
  auto& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 6u);
  std::string joined;
  for (auto& t : content) {
    joined += t["token"].get<std::string>();
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);  // greedy: the chosen token is the most likely
    EXPECT_NEAR(t["top_logprobs"][0]["logprob"].get<double>(), t["logprob"].get<double>(), 1e-6);
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(), t["top_logprobs"][1]["logprob"].get<double>());
    EXPECT_EQ(t["bytes"].size(), t["token"].get<std::string>().size());
  }
  EXPECT_EQ(joined, j["choices"][0]["message"]["content"]);
  auto c = json::parse(
      h.post("/v1/completions", json{{"prompt", "xyz"}, {"max_tokens", 4}, {"temperature", 0}, {"logprobs", 2}}.dump())->body);
  auto& lp = c["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"].size(), 4u);
  EXPECT_EQ(lp["token_logprobs"].size(), 4u);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_EQ(lp["text_offset"][0], 0);
}

TEST(Server, ErrorCasesGiveOpenAIErrors) {
  ServerOptions o;
  o.n_ctx = 64;
  Harness h(o);
  const std::string C = "/v1/chat/completions", P = "/v1/completions";
  json ok = chat_body("x", 4);
  auto with = [&](const char* k, json v) {
    json b = ok;
    b[k] = v;
    return b.dump();
  };
  std::vector<std::tuple<std::string, std::string, int>> cases = {
      {C, "{not json", 400},
      {C, "[1,2,3]", 400},
      {C, "\"str\"", 400},
      {C, "", 400},
      {C, "{}", 400},
      {C, json{{"messages", "hello"}}.dump(), 400},
      {C, json{{"messages", json::array()}}.dump(), 400},
      {C, json{{"messages", json::array({1})}}.dump(), 400},
      {C, json{{"messages", json::array({{{"role", "user"}}})}}.dump(), 400},
      {C, json{{"messages", json::array({{{"role", 5}, {"content", "x"}}})}}.dump(), 400},
      {C, json{{"messages", json::array({{{"role", "wizard"}, {"content", "x"}}})}}.dump(), 400},
      {C, json{{"messages", json::array({{{"role", "user"}, {"content", 12}}})}}.dump(), 400},
      {C, with("n", 2), 400},
      {C, with("n", "one"), 400},
      {C, with("max_tokens", -1), 400},
      {C, with("max_tokens", 1000000000), 400},
      {C, with("max_tokens", 65), 400},
      {C, with("max_tokens", "10"), 400},
      {C, with("max_tokens", 1.5), 400},
      {C, with("max_completion_tokens", -5), 400},
      {C, with("temperature", "hot"), 400},
      {C, with("temperature", -0.1), 400},
      {C, with("temperature", 2.5), 400},
      {C, with("top_p", 0), 400},
      {C, with("top_p", 1.5), 400},
      {C, with("seed", "abc"), 400},
      {C, with("stop", 5), 400},
      {C, with("stop", json::array({"a", 1})), 400},
      {C, with("stop", ""), 400},
      {C, with("stream", "yes"), 400},
      {C, with("stream_options", json{{"include_usage", true}}), 400},  // without stream
      {C, with("logprobs", "true"), 400},
      {C, with("top_logprobs", 3), 400},  // without logprobs
      {C, with("model", 7), 400},
      {C, chat_body(std::string(80, 'z'), 4).dump(), 400},  // prompt longer than the context
      {P, json{{"max_tokens", 3}}.dump(), 400},
      {P, json{{"prompt", 42}}.dump(), 400},
      {P, json{{"prompt", json::array()}}.dump(), 400},
      {P, json{{"prompt", json::array({1, 2, 260})}}.dump(), 400},
      {P, json{{"prompt", json::array({1, -2})}}.dump(), 400},
      {P, json{{"prompt", json::array({1, 2.5})}}.dump(), 400},
      {P, json{{"prompt", json::array({"a", "b"})}}.dump(), 400},
      {P, json{{"prompt", std::vector<int>(64, 'a')}}.dump(), 400},
      {P, json{{"prompt", "abc"}, {"max_tokens", -3}}.dump(), 400},
      {P, json{{"prompt", "abc"}, {"logprobs", 50}}.dump(), 400},
      {"/tokenize", json{{"content", 5}}.dump(), 400},
      {"/tokenize", "nope", 400},
      {"/detokenize", json{{"tokens", json::array({1, 99999})}}.dump(), 400},
      {"/detokenize", json{{"tokens", "abc"}}.dump(), 400},
      {"/v1/nothing", "{}", 404},
  };
  for (auto& [path, body, status] : cases) {
    SCOPED_TRACE(path + " " + body.substr(0, 80));
    expect_error_shape(h.post(path, body), status);
  }
  auto r = h.post(C, json{{"messages", json::array({{{"role", "user"}, {"content", "x"}}})}, {"max_tokens", 65}}.dump());
  EXPECT_EQ(json::parse(r->body)["error"]["param"], "max_tokens");
  r = h.post(C, chat_body(std::string(80, 'z'), 4).dump());
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "context_length_exceeded");
  // An empty text prompt is just BOS for this tokenizer: allowed.
  EXPECT_EQ(h.post(P, json{{"prompt", ""}, {"max_tokens", 2}}.dump())->status, 200);
  // Still healthy after all that.
  EXPECT_EQ(h.get("/health")->status, 200);
  EXPECT_EQ(h.post(C, ok.dump())->status, 200);
}

TEST(Server, ApiKeyIsRequiredExceptForHealth) {
  ServerOptions o;
  o.api_key = "s3cret-key";
  Harness h(o);
  expect_error_shape(h.post("/v1/chat/completions", chat_body("x", 2).dump()), 401);
  expect_error_shape(h.post("/v1/chat/completions", chat_body("x", 2).dump(), {{"Authorization", "Bearer s3cret-kez"}}), 401);
  expect_error_shape(h.post("/v1/chat/completions", chat_body("x", 2).dump(), {{"Authorization", "Bearer s3cret-key2"}}), 401);
  expect_error_shape(h.post("/v1/chat/completions", chat_body("x", 2).dump(), {{"Authorization", "s3cret-key"}}), 401);
  expect_error_shape(h.get("/v1/models"), 401);
  EXPECT_EQ(h.get("/health")->status, 200);
  auto r = h.post("/v1/chat/completions", chat_body("x", 2).dump(), {{"Authorization", "Bearer s3cret-key"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("", "a"));
}

TEST(Server, ModelsTokenizeDetokenizeMetrics) {
  Harness h;
  auto m = json::parse(h.get("/v1/models")->body);
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "fake-model");
  auto t = json::parse(h.post("/tokenize", json{{"content", "hi<|im_end|>"}}.dump())->body);
  EXPECT_EQ(t["tokens"], json::array({'h', 'i', kImEnd}));
  t = json::parse(h.post("/tokenize", json{{"content", "hi"}, {"add_special", true}}.dump())->body);
  EXPECT_EQ(t["tokens"], json::array({kBos, 'h', 'i'}));
  auto d = json::parse(h.post("/detokenize", json{{"tokens", {'o', 'k'}}}.dump())->body);
  EXPECT_EQ(d["content"], "ok");
  h.post("/v1/completions", json{{"prompt", "abc"}, {"max_tokens", 5}}.dump());
  auto r = h.get("/metrics");
  ASSERT_TRUE(r);
  for (const char* name : {"minnow_requests_total", "minnow_generated_tokens_total", "minnow_queue_depth",
                           "minnow_slots_busy", "minnow_slots_free", "minnow_time_to_first_token_seconds_bucket",
                           "minnow_time_per_output_token_seconds_count", "minnow_request_duration_seconds_sum"})
    EXPECT_NE(r->body.find(name), std::string::npos) << name;
  EXPECT_GE(h.metric("minnow_generated_tokens_total"), 5);
  EXPECT_EQ(h.metric("minnow_slots_free"), h.opt.n_slots);
}

TEST(Server, ConcurrentRequestsAreBatchInvariant) {
  ServerOptions o;
  o.n_slots = 8;
  Harness h(o, true, /*delay_ms=*/1);
  const int N = 16;
  std::vector<std::future<std::string>> fs;
  for (int i = 0; i < N; ++i)
    fs.push_back(std::async(std::launch::async, [&h, i] {
      auto r = h.post("/v1/chat/completions", chat_body("question number " + std::to_string(i * 7919), 10 + i).dump());
      if (!r || r->status != 200) return std::string("HTTP failure");
      return json::parse(r->body)["choices"][0]["message"]["content"].get<std::string>();
    }));
  for (int i = 0; i < N; ++i) {
    json body = chat_body("question number " + std::to_string(i * 7919), 10 + i);
    EXPECT_EQ(fs[i].get(), detok(reference_greedy(chat_prompt_of(body), 10 + i, h.opt.chunk, h.opt.n_ctx)));
  }
  EXPECT_GE(h.be->max_distinct_seqs(), 2);
  EXPECT_TRUE(h.be->violations().empty());
}

TEST(Server, QueueFullGives429AndStaysResponsive) {
  ServerOptions o;
  o.n_slots = 1;
  o.max_queue = 1;
  Harness h(o, true);
  h.be->hold = true;  // the first request's forward pass blocks: one running, one waiting, the rest refused
  std::vector<std::future<int>> fs;
  for (int i = 0; i < 6; ++i)
    fs.push_back(std::async(std::launch::async, [&h] {
      auto r = h.post("/v1/completions", json{{"prompt", "abc"}, {"max_tokens", 8}}.dump());
      if (r && r->status == 429) {
        auto j = json::parse(r->body);
        EXPECT_EQ(j["error"]["code"], "queue_full");
        EXPECT_EQ(j["error"]["type"], "rate_limit_error");
      }
      return r ? r->status : -1;
    }));
  EXPECT_TRUE(eventually([&] { return h.metric("minnow_requests_rejected_total") == 4; }, 20000));
  auto health = h.get("/health");  // answered while the queue is full
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  // One admitted (its forward pass held), one waiting.
  EXPECT_TRUE(eventually([&] { return h.metric("minnow_queue_depth") == 1 && h.metric("minnow_slots_busy") == 1; }));
  h.be->hold = false;
  int n200 = 0, n429 = 0;
  for (auto& f : fs) {
    int s = f.get();
    n200 += s == 200;
    n429 += s == 429;
  }
  EXPECT_EQ(n200, 2);
  EXPECT_EQ(n429, 4);
  EXPECT_EQ(h.post("/v1/completions", json{{"prompt", "abc"}, {"max_tokens", 2}}.dump())->status, 200);
}

TEST(Server, ClientDisconnectMidStreamFreesSlot) {
  ServerOptions o;
  o.n_slots = 2;
  o.n_ctx = 4096;
  Harness h(o, true, /*delay_ms=*/5);
  for (int round = 0; round < 3; ++round) {
    int fd = raw_connect(h.port);
    ASSERT_GE(fd, 0);
    json body = {{"prompt", "abc"}, {"max_tokens", 3000}, {"stream", true}};
    std::string b = body.dump();
    std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                      std::to_string(b.size()) + "\r\n\r\n" + b;
    ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
    std::string got;
    char buf[4096];
    while (got.find("data: {") == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      ASSERT_GT(n, 0);
      got.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
  }
  EXPECT_TRUE(eventually([&] { return h.metric("minnow_slots_busy") == 0; }));
  EXPECT_EQ(h.metric("minnow_slots_free"), 2);
  EXPECT_TRUE(eventually([&] { return h.metric("minnow_requests_cancelled_total") >= 3; }));
  EXPECT_LT(h.metric("minnow_generated_tokens_total"), 3 * 3000);
  EXPECT_EQ(h.post("/v1/completions", json{{"prompt", "abc"}, {"max_tokens", 2}}.dump())->status, 200);
}

TEST(Server, ClientDisconnectWhileWaitingForNonStreamingResponse) {
  ServerOptions o;
  o.n_slots = 1;
  o.n_ctx = 4096;
  Harness h(o, true, /*delay_ms=*/5);
  int fd = raw_connect(h.port);
  ASSERT_GE(fd, 0);
  std::string b = json{{"prompt", "abc"}, {"max_tokens", 3000}}.dump();
  std::string req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(b.size()) + "\r\n\r\n" + b;
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  ASSERT_TRUE(eventually([&] { return h.metric("minnow_slots_busy") == 1; }));
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return h.metric("minnow_slots_busy") == 0; }, 5000));
  EXPECT_TRUE(eventually([&] { return h.metric("minnow_requests_cancelled_total") == 1; }));
  EXPECT_LT(h.metric("minnow_generated_tokens_total"), 3000);
}

TEST(Server, BigFormLabelledJsonAndHugeBodies) {
  Harness h;
  // curl -d sends JSON labelled as a form: still accepted, even beyond httplib's 8 KiB form limit.
  std::string long_prompt(20000, 'q');
  auto r = h.client()->Post("/tokenize", json{{"content", long_prompt}}.dump(), "application/x-www-form-urlencoded");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["tokens"].size(), long_prompt.size());
  // Deep nesting and over-limit bodies get errors, not crashes.
  std::string deep = "{\"x\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
  r = h.post("/v1/chat/completions", deep);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  std::string huge(17u << 20, ' ');
  r = h.post("/v1/chat/completions", huge);
  if (r) {
    EXPECT_EQ(r->status, 413);
  }
  EXPECT_EQ(h.get("/health")->status, 200);
}

TEST(Server, ArbitraryBodiesNeverCrash) {
  Harness h;
  std::mt19937 rng(2024);
  std::vector<std::string> seeds = {
      chat_body("hello", 3).dump(),
      json{{"prompt", "abc"}, {"max_tokens", 3}}.dump(),
      json{{"prompt", {1, 2, 3}}, {"max_tokens", 2}, {"stream", true}}.dump(),
  };
  const char* paths[] = {"/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"};
  for (int i = 0; i < 300; ++i) {
    std::string b = seeds[rng() % seeds.size()];
    int edits = 1 + static_cast<int>(rng() % 6);
    for (int e = 0; e < edits && !b.empty(); ++e) {
      size_t pos = rng() % b.size();
      switch (rng() % 4) {
        case 0: b[pos] = static_cast<char>(rng() % 256); break;
        case 1: b.erase(pos, 1 + rng() % 5); break;
        case 2: b.insert(pos, std::string(1 + rng() % 3, "{}[]\":,0-e9tfn\\"[rng() % 15])); break;
        case 3: b = b.substr(0, pos); break;
      }
    }
    auto r = h.post(paths[rng() % 4], b);
    ASSERT_TRUE(r) << "no answer for body: " << b;
    EXPECT_TRUE(r->status == 200 || (r->status >= 400 && r->status < 500)) << r->status << " for " << b;
  }
  EXPECT_EQ(h.get("/health")->status, 200);
}

TEST(Server, ShutdownFinishesInFlightThenStops) {
  ServerOptions o;
  o.shutdown_grace_s = 5;
  Harness h(o, true, /*delay_ms=*/10);
  auto f = std::async(std::launch::async, [&h] {
    return h.post("/v1/completions", json{{"prompt", "abc"}, {"max_tokens", 20}}.dump());
  });
  ASSERT_TRUE(eventually([&] { return h.metric("minnow_slots_busy") == 1; }));  // the request is running
  auto t0 = std::chrono::steady_clock::now();
  h.srv->shutdown();
  h.srv->wait();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto r = f.get();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);  // finished within the grace period
  EXPECT_EQ(json::parse(r->body)["usage"]["completion_tokens"], 20);
  EXPECT_LT(s, 5.0);
  EXPECT_FALSE(h.get("/health"));  // no longer listening
}

TEST(Server, ShutdownCancelsWhatOutlivesTheGrace) {
  ServerOptions o;
  o.shutdown_grace_s = 0.2;
  o.n_ctx = 8192;
  Harness h(o, true, /*delay_ms=*/5);
  auto f = std::async(std::launch::async, [&h] {
    return h.post("/v1/completions", json{{"prompt", "abc"}, {"max_tokens", 5000}}.dump());
  });
  ASSERT_TRUE(eventually([&] { return h.metric("minnow_slots_busy") == 1; }));
  auto t0 = std::chrono::steady_clock::now();
  h.srv->shutdown();
  h.srv->wait();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  auto r = f.get();
  if (r) {
    EXPECT_EQ(r->status, 503);
  }
}
