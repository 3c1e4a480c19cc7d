// The HTTP server against hostile clients (issue 18), with the fake model and backend: header and body
// deadlines, per-client and overall connection caps (oldest idle connection evicted, busy ones never),
// hundreds of slow connections not starving /health or a chat request, and prompts refused by their byte
// length before they are tokenized. Bounds on time here are generous failure limits, never measurements.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "server/http_server.h"
#include "test_server_fakes.h"

using namespace minnow;
using namespace minnow::server;
using namespace minnow::testing_fakes;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Harness {
  ServerOptions opt;
  FakeBackend* be = nullptr;
  FakeModel* model = nullptr;
  std::unique_ptr<HttpServer> srv;
  int port = 0;
  explicit Harness(ServerOptions o = {}) : opt(std::move(o)) {
    opt.host = "127.0.0.1";
    opt.port = 0;
    srv = std::make_unique<HttpServer>(opt);
    port = srv->bind();
    srv->start();
    auto b = std::make_unique<FakeBackend>(opt.n_slots, opt.n_ctx);
    be = b.get();
    auto m = std::make_unique<FakeModel>();
    model = m.get();
    srv->set_ready(std::move(m), std::move(b));
  }
  std::unique_ptr<httplib::Client> client(int timeout_s = 10) const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
    c->set_read_timeout(timeout_s, 0);
    c->set_connection_timeout(timeout_s, 0);
    return c;
  }
};

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
  return fd;
}

bool send_all(int fd, const std::string& s) {
  return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size());
}

// True when the server has closed fd (EOF or reset) within ms; data it sends first is collected in *got.
bool closed_within(int fd, int ms, std::string* got = nullptr) {
  auto end = Clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, left) <= 0) return false;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
    if (got) got->append(buf, static_cast<size_t>(n));
  }
}

json chat_body(const std::string& user, int max_tokens) {
  return {{"messages", json::array({{{"role", "user"}, {"content", user}}})}, {"max_tokens", max_tokens},
          {"temperature", 0}};
}

}  // namespace

TEST(ServerHostile, TricklingHeadersAreCutAtTheHeaderDeadline) {
  ServerOptions o;
  o.conn.head_timeout_s = 0.5;
  Harness h(o);
  int fd = raw_connect(h.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "G"));
  // A byte every 100 ms keeps every single read short, but the headers never complete in time.
  bool closed = false;
  for (int i = 0; i < 100 && !closed; ++i) {
    send_all(fd, "E");
    closed = closed_within(fd, 100);
  }
  EXPECT_TRUE(closed) << "a trickling request line kept its connection for 10 s (header deadline 0.5 s)";
  ::close(fd);
  auto r = h.client()->Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(ServerHostile, TricklingBodyIsCutAtTheBodyDeadline) {
  ServerOptions o;
  o.conn.body_timeout_s = 0.5;
  Harness h(o);
  int fd = raw_connect(h.port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(send_all(fd, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: 1000\r\n\r\n{"));
  bool closed = false;
  std::string got;
  for (int i = 0; i < 100 && !closed; ++i) {
    send_all(fd, " ");
    closed = closed_within(fd, 100, &got);
  }
  EXPECT_TRUE(closed) << "a trickling body kept its connection for 10 s (body deadline 0.5 s)";
  ::close(fd);
  EXPECT_EQ(h.be->entered.load(), 0);
}

TEST(ServerHostile, IdleConnectionsOverThePerClientCapEvictTheOldest) {
  ServerOptions o;
  o.conn.max_per_client = 4;
  Harness h(o);
  std::vector<int> fds;
  for (int i = 0; i < 4; ++i) {
    fds.push_back(raw_connect(h.port));
    ASSERT_GE(fds.back(), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a clear oldest
  }
  // Wait until all four are registered, then a fifth connection makes the first one go.
  for (int i = 0; i < 250 && h.srv->open_connections() < 4; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(h.srv->open_connections(), 4u);
  auto r = h.client()->Get("/health");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(closed_within(fds[0], 5000)) << "the oldest idle connection was not evicted";
  EXPECT_FALSE(closed_within(fds[3], 200)) << "a younger idle connection was evicted";
  for (int fd : fds) ::close(fd);
}

TEST(ServerHostile, BusyConnectionsAreNeverEvictedAndTheNextOneGets429) {
  ServerOptions o;
  o.conn.max_per_client = 2;
  o.n_slots = 2;
  Harness h(o);
  h.be->hold = true;  // both requests stay in their handlers
  auto a = std::async(std::launch::async, [&] { return h.client(30)->Post("/v1/chat/completions", chat_body("a", 2).dump(), "application/json"); });
  auto b = std::async(std::launch::async, [&] { return h.client(30)->Post("/v1/chat/completions", chat_body("b", 2).dump(), "application/json"); });
  // Both handlers are running (their connections are busy) once two requests are in flight.
  for (int i = 0; i < 1000 && h.srv->metrics().http_in_flight.load() < 2; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GE(h.srv->metrics().http_in_flight.load(), 2);
  int fd = raw_connect(h.port);
  ASSERT_GE(fd, 0);
  std::string got;
  EXPECT_TRUE(closed_within(fd, 5000, &got));
  EXPECT_NE(got.find("HTTP/1.1 429"), std::string::npos) << got;
  EXPECT_NE(got.find("too_many_connections"), std::string::npos) << got;
  ::close(fd);
  h.be->hold = false;
  auto ra = a.get(), rb = b.get();
  ASSERT_TRUE(ra);
  ASSERT_TRUE(rb);
  EXPECT_EQ(ra->status, 200) << ra->body;
  EXPECT_EQ(rb->status, 200) << rb->body;
}

// With hundreds of slow connections open (each sent part of a request and trickles on), /health and a chat
// request are still answered: every connection has its own thread, and over the per-client cap the oldest
// slow one is closed.
static void slow_connections_leave_room(int max_per_client, size_t expect_open_at_least) {
  ServerOptions o;
  o.conn.max_per_client = max_per_client;
  Harness h(o);
  std::vector<int> fds;
  for (int i = 0; i < 300; ++i) {
    int fd = raw_connect(h.port);
    ASSERT_GE(fd, 0) << "connect " << i;
    send_all(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
    fds.push_back(fd);
  }
  for (int i = 0; i < 250 && h.srv->open_connections() < expect_open_at_least; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(h.srv->open_connections(), expect_open_at_least);
  for (int fd : fds) send_all(fd, "X");  // still trickling
  auto t0 = Clock::now();
  auto health = h.client(5)->Get("/health");
  ASSERT_TRUE(health) << "/health not answered with 300 slow connections open";
  EXPECT_EQ(health->status, 200);
  auto chat = h.client(5)->Post("/v1/chat/completions", chat_body("hi", 2).dump(), "application/json");
  ASSERT_TRUE(chat) << "chat not answered with 300 slow connections open";
  EXPECT_EQ(chat->status, 200) << chat->body;
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("[ info ] /health + chat answered in %.3f s with 300 slow connections (%zu registered)\n", s,
              h.srv->open_connections());
  for (int fd : fds) ::close(fd);
}

TEST(ServerHostile, ThreeHundredSlowConnectionsUnderTheDefaultCaps) { slow_connections_leave_room(128, 100); }

TEST(ServerHostile, ThreeHundredSlowConnectionsAllKeptOpen) { slow_connections_leave_room(1024, 300); }

TEST(ServerHostile, PromptThatCannotFitIsRefusedBeforeTokenizing) {
  ServerOptions o;
  o.n_ctx = 64;
  Harness h(o);
  // The fake model's longest token is 12 bytes: more than 64 * 12 bytes can never fit 64 positions.
  std::string huge(64 * 12 + 1, 'a');
  auto r = h.client()->Post("/v1/completions", json{{"prompt", huge}, {"max_tokens", 1}}.dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("context_length_exceeded"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("bytes"), std::string::npos) << r->body;
  EXPECT_EQ(h.model->tokenize_calls.load(), 0) << "the prompt was tokenized before being refused";
  auto c = h.client()->Post("/v1/chat/completions", chat_body(huge, 1).dump(), "application/json");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, 400);
  EXPECT_NE(c->body.find("bytes"), std::string::npos) << c->body;
  EXPECT_EQ(h.model->tokenize_calls.load(), 0) << "the chat prompt was tokenized before being refused";
  // Exactly at the bound the text might fit (12-byte tokens): it is tokenized, then refused by its token count.
  std::string edge(64 * 12, 'a');
  auto e = h.client()->Post("/v1/completions", json{{"prompt", edge}, {"max_tokens", 1}}.dump(), "application/json");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_NE(e->body.find("tokens"), std::string::npos) << e->body;
  EXPECT_EQ(h.model->tokenize_calls.load(), 1);
  // A prompt that fits still works.
  auto ok = h.client()->Post("/v1/completions", json{{"prompt", "hello"}, {"max_tokens", 2}}.dump(), "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST(ServerHostile, ProbabilitiesOutOfRangeAre400) {
  Harness h;
  for (const char* bad : {R"({"prompt":"x","top_p":2})", R"({"prompt":"x","top_p":-0.5})", R"({"prompt":"x","top_p":0})",
                          R"({"prompt":"x","temperature":3})", R"({"prompt":"x","top_p":"0.5"})"}) {
    auto r = h.client()->Post("/v1/completions", bad, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << bad << " -> " << r->body;
  }
}

TEST(ServerHostile, ShutdownDoesNotWaitForSlowConnections) {
  ServerOptions o;
  o.conn.head_timeout_s = 60;  // were they waited for, shutdown would take a minute
  Harness h(o);
  std::vector<int> fds;
  for (int i = 0; i < 50; ++i) {
    int fd = raw_connect(h.port);
    ASSERT_GE(fd, 0);
    send_all(fd, "GET /health HTTP/1.1\r\n");
    fds.push_back(fd);
  }
  for (int i = 0; i < 250 && h.srv->open_connections() < 50; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(h.srv->open_connections(), 50u);
  auto t0 = Clock::now();
  h.srv->shutdown();
  h.srv->wait();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 30.0);
  EXPECT_EQ(h.srv->open_connections(), 0u);
  for (int fd : fds) ::close(fd);
}
