#pragma once
// Connection bookkeeping that keeps the HTTP server reachable under hostile clients (issue 18):
//  - deadlines: the request line and headers must arrive within head_timeout_s of their first byte, the body
//    within body_timeout_s of the headers, the next keep-alive request within idle_timeout_s; a trickling
//    client cannot hold a connection (and its thread) for longer;
//  - caps on open connections per client address and overall. Over a cap, the oldest connection that is not
//    being answered (idle keep-alive, or still sending its request) is closed to make room; only when every
//    connection is busy answering is the new one refused (429 per client, 503 overall);
//  - one thread per open connection, started on demand up to the overall cap, so idle or slow connections
//    never queue ahead of a new request: /health always answers.
// httplib (Debian's 0.11, compiled) reads requests through an httplib::Stream; ConnStream is ours, with the
// deadline checked on every read.
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace minnow::server {

struct ConnLimits {
  int max_connections = 1024;    // open connections overall (also the most HTTP threads)
  int max_per_client = 128;      // open connections from one client address
  double head_timeout_s = 10;    // request line + headers, from their first byte
  double body_timeout_s = 60;    // the whole body, from the end of the headers
  double idle_timeout_s = 5;     // keep-alive: waiting for the next request
  double io_timeout_s = 30;      // one write (or read) that makes no progress at all
};

using ConnClock = std::chrono::steady_clock;

// What a connection is doing; only Busy (a handler runs or the response is being written) is never evicted.
enum class ConnPhase { Idle, Head, Body, Busy };

struct Conn {
  int fd = -1;
  std::string ip;
  int port = 0;
  ConnPhase phase = ConnPhase::Idle;    // guarded by ConnectionTable's mutex
  ConnClock::time_point since;          // when the phase began (eviction picks the oldest)
  bool evicted = false;                 // guarded by the mutex
  ConnClock::time_point deadline;       // owner thread only: reads fail after it (Idle/Head/Body)
  bool has_deadline = true;             // owner thread only
};

class ConnectionTable {
 public:
  explicit ConnectionTable(ConnLimits lim) : lim_(lim) {}
  enum class Admit { Ok, TooManyFromClient, TooMany };
  // Registers an accepted socket, making room over a cap by evicting; on anything but Ok the caller refuses
  // and closes the socket (nothing is registered then).
  Admit admit(const std::shared_ptr<Conn>& c);
  // Unregisters; must come before the socket is closed (an evictor shuts it down only while registered).
  void release(const std::shared_ptr<Conn>& c);
  void set_phase(Conn& c, ConnPhase p);
  bool evicted(const Conn& c);
  // Evicts the oldest connection that is not busy; false when all are busy. Used when no thread is free.
  bool evict_one();
  void evict_all_idle();  // shutdown: wakes every thread waiting on a client
  size_t size();
  uint64_t evictions();
  uint64_t refusals();

 private:
  bool evict_oldest_locked(const std::string* ip, const Conn* except);
  ConnLimits lim_;
  std::mutex mu_;
  std::list<std::shared_ptr<Conn>> conns_;
  uint64_t evictions_ = 0, refusals_ = 0;
};

// httplib::Stream over one accepted socket: buffered reads that fail once the connection's deadline has
// passed (or after io_timeout_s without data), writes that fail after io_timeout_s without progress.
class ConnStream : public httplib::Stream {
 public:
  ConnStream(Conn& c, double io_timeout_s) : c_(c), io_timeout_ms_(static_cast<int>(io_timeout_s * 1000)) {}
  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return c_.fd; }
  // Waits up to ms for the first byte of a request (buffered or on the socket); false on timeout or close.
  bool wait_readable(int ms) const;
  // A read failed for want of data in time (deadline or io timeout): the connection is to be closed, even if
  // httplib answered the broken request and would keep it alive.
  bool timed_out() const { return timed_out_; }

 private:
  int read_wait_ms() const;  // how long one read may wait: min(io timeout, time to the deadline)
  Conn& c_;
  int io_timeout_ms_;
  std::vector<char> buf_ = std::vector<char>(4096);
  size_t off_ = 0, len_ = 0;
  bool timed_out_ = false;
};

// httplib::TaskQueue with one thread per task, started on demand up to max_threads and reused afterwards.
// When every thread is taken, on_full() is asked to free one (it evicts an idle connection). A thread that
// cannot be created leaves the task queued for the next free thread (and is reported once on stderr).
class ConnThreads : public httplib::TaskQueue {
 public:
  ConnThreads(size_t max_threads, std::function<bool()> on_full, std::function<void()> on_shutdown);
  ~ConnThreads() override;
  void enqueue(std::function<void()> fn) override;
  void shutdown() override;

 private:
  void worker();
  size_t max_threads_;
  std::function<bool()> on_full_;
  std::function<void()> on_shutdown_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stop_ = false;
  bool warned_ = false;
};

// The peer address of a socket as text ("127.0.0.1", "::1"), and its port.
void peer_of(int fd, std::string& ip, int& port);
// Answers a refused connection with a minimal HTTP error and the given JSON body (best effort, never blocks).
void send_refusal(int fd, int status, const std::string& json_body);

}  // namespace minnow::server
