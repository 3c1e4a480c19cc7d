#include "server/connection_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

namespace minnow::server {

// ---- ConnectionTable ---------------------------------------------------------------------------------------

ConnectionTable::Admit ConnectionTable::admit(const std::shared_ptr<Conn>& c) {
  std::lock_guard<std::mutex> lk(mu_);
  c->phase = ConnPhase::Idle;
  c->since = ConnClock::now();
  size_t total = 1, same = 1;
  for (const auto& o : conns_) {
    if (o->evicted) continue;  // already shut down, its thread is on the way out
    ++total;
    if (o->ip == c->ip) ++same;
  }
  if (same > static_cast<size_t>(std::max(1, lim_.max_per_client)) && !evict_oldest_locked(&c->ip, nullptr)) {
    ++refusals_;
    return Admit::TooManyFromClient;
  }
  if (total > static_cast<size_t>(std::max(1, lim_.max_connections)) && !evict_oldest_locked(nullptr, nullptr)) {
    ++refusals_;
    return Admit::TooMany;
  }
  conns_.push_back(c);
  return Admit::Ok;
}

void ConnectionTable::release(const std::shared_ptr<Conn>& c) {
  std::lock_guard<std::mutex> lk(mu_);
  conns_.remove(c);
}

void ConnectionTable::set_phase(Conn& c, ConnPhase p) {
  std::lock_guard<std::mutex> lk(mu_);
  c.phase = p;
  c.since = ConnClock::now();
}

bool ConnectionTable::evicted(const Conn& c) {
  std::lock_guard<std::mutex> lk(mu_);
  return c.evicted;
}

bool ConnectionTable::evict_oldest_locked(const std::string* ip, const Conn* except) {
  Conn* victim = nullptr;
  for (const auto& o : conns_) {
    if (o->evicted || o->phase == ConnPhase::Busy || o.get() == except) continue;
    if (ip && o->ip != *ip) continue;
    if (!victim || o->since < victim->since) victim = o.get();
  }
  if (!victim) return false;
  victim->evicted = true;
  // Still registered, so the socket is still open: its owner wakes from poll/recv and closes it.
  ::shutdown(victim->fd, SHUT_RDWR);
  ++evictions_;
  return true;
}

bool ConnectionTable::evict_one() {
  std::lock_guard<std::mutex> lk(mu_);
  return evict_oldest_locked(nullptr, nullptr);
}

void ConnectionTable::evict_all_idle() {
  std::lock_guard<std::mutex> lk(mu_);
  while (evict_oldest_locked(nullptr, nullptr)) {
  }
}

size_t ConnectionTable::size() {
  std::lock_guard<std::mutex> lk(mu_);
  return conns_.size();
}

uint64_t ConnectionTable::evictions() {
  std::lock_guard<std::mutex> lk(mu_);
  return evictions_;
}

uint64_t ConnectionTable::refusals() {
  std::lock_guard<std::mutex> lk(mu_);
  return refusals_;
}

// ---- ConnStream --------------------------------------------------------------------------------------------

namespace {

// poll() for one event, restarted on EINTR with the time left; > 0 when ready.
int poll_one(int fd, short events, int ms) {
  auto until = ConnClock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, ms);
    if (r >= 0 || errno != EINTR) return r;
    ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(until - ConnClock::now()).count());
    if (ms <= 0) return 0;
  }
}

void address_text(const sockaddr_storage& a, std::string& ip, int& port) {
  char host[INET6_ADDRSTRLEN] = {0};
  if (a.ss_family == AF_INET) {
    const auto* s = reinterpret_cast<const sockaddr_in*>(&a);
    ::inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
    port = ntohs(s->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
    port = ntohs(s->sin6_port);
  }
  ip = host;
}

}  // namespace

int ConnStream::read_wait_ms() const {
  if (!c_.has_deadline) return io_timeout_ms_;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(c_.deadline - ConnClock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left, io_timeout_ms_));
}

bool ConnStream::wait_readable(int ms) const { return off_ < len_ || poll_one(c_.fd, POLLIN, ms) > 0; }

bool ConnStream::is_readable() const {
  if (off_ < len_) return true;
  int ms = read_wait_ms();
  return ms > 0 && poll_one(c_.fd, POLLIN, ms) > 0;
}

bool ConnStream::is_writable() const {
  if (poll_one(c_.fd, POLLOUT, io_timeout_ms_) <= 0) return false;
  // Still connected? A readable socket whose peek gives 0 bytes has been closed by the client.
  if (poll_one(c_.fd, POLLIN, 0) <= 0) return true;
  char b;
  ssize_t n = ::recv(c_.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
}

ssize_t ConnStream::read(char* ptr, size_t size) {
  if (off_ < len_) {
    size_t n = std::min(size, len_ - off_);
    std::memcpy(ptr, buf_.data() + off_, n);
    off_ += n;
    return static_cast<ssize_t>(n);
  }
  if (!is_readable()) {  // deadline passed, or no data for io_timeout
    timed_out_ = true;
    return -1;
  }
  for (;;) {
    ssize_t n = size >= buf_.size() ? ::recv(c_.fd, ptr, size, 0) : ::recv(c_.fd, buf_.data(), buf_.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || size >= buf_.size()) return n;
    off_ = 0;
    len_ = static_cast<size_t>(n);
    size_t k = std::min(size, len_);
    std::memcpy(ptr, buf_.data(), k);
    off_ = k;
    return static_cast<ssize_t>(k);
  }
}

ssize_t ConnStream::write(const char* ptr, size_t size) {
  if (poll_one(c_.fd, POLLOUT, io_timeout_ms_) <= 0) return -1;
  for (;;) {
    ssize_t n = ::send(c_.fd, ptr, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

void ConnStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = c_.ip;
  port = c_.port;
}

void ConnStream::get_local_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  ip.clear();
  port = 0;
  if (::getsockname(c_.fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) address_text(a, ip, port);
}

void peer_of(int fd, std::string& ip, int& port) {
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  ip.clear();
  port = 0;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) address_text(a, ip, port);
  if (ip.empty()) ip.push_back('?');
}

void send_refusal(int fd, int status, const std::string& json_body) {
  // Appended piece by piece (g++ 12 warns falsely about one long chain of std::string operator+).
  std::string msg = "HTTP/1.1 ";
  msg += std::to_string(status);
  msg += status == 429 ? " Too Many Requests" : " Service Unavailable";
  msg += "\r\nContent-Type: application/json\r\nContent-Length: ";
  msg += std::to_string(json_body.size());
  msg += "\r\nConnection: close\r\n\r\n";
  msg += json_body;
  (void)::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

// ---- ConnThreads -------------------------------------------------------------------------------------------

ConnThreads::ConnThreads(size_t max_threads, std::function<bool()> on_full, std::function<void()> on_shutdown)
    : max_threads_(std::max<size_t>(1, max_threads)), on_full_(std::move(on_full)),
      on_shutdown_(std::move(on_shutdown)) {}

ConnThreads::~ConnThreads() { shutdown(); }

void ConnThreads::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lk(mu_);
  jobs_.push_back(std::move(fn));
  if (idle_ >= jobs_.size()) {
    cv_.notify_one();
    return;
  }
  if (threads_.size() < max_threads_) {
    try {
      threads_.emplace_back([this] { worker(); });
      return;
    } catch (const std::system_error& e) {
      // Runs on httplib's listener thread: nothing may escape. The job waits for the next free thread.
      if (!warned_) std::fprintf(stderr, "minnow serve: cannot start an HTTP thread (%s); requests wait\n", e.what());
      warned_ = true;
    }
  }
  lk.unlock();
  if (on_full_) on_full_();  // close an idle connection: its thread then takes the job
}

void ConnThreads::worker() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock<std::mutex> lk(mu_);
      ++idle_;
      cv_.wait(lk, [this] { return stop_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;  // stopping
      fn = std::move(jobs_.front());
      jobs_.pop_front();
    }
    fn();
  }
}

void ConnThreads::shutdown() {
  std::vector<std::thread> ts;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) return;
    stop_ = true;
  }
  if (on_shutdown_) on_shutdown_();
  cv_.notify_all();
  {
    std::lock_guard<std::mutex> lk(mu_);
    ts.swap(threads_);
  }
  for (auto& t : ts) t.join();
}

}  // namespace minnow::server
