#pragma once
// Client-disconnect detection for non-streaming requests. Debian's cpp-httplib (0.11) gives handlers no way
// to see whether the client is still there, so we find the handler's own socket by its addresses
// (/proc/self/fd + getsockname/getpeername) and peek at it: a peer that has closed reads as EOF.
#include <string>

namespace minnow::server {

class ConnProbe {
 public:
  // Looks up the connected socket with these endpoints; if none is found, alive() always says true.
  ConnProbe(const std::string& remote_addr, int remote_port, int local_port);
  bool found() const { return fd_ >= 0; }
  bool alive() const;  // false once the peer has closed or reset the connection

 private:
  int fd_ = -1;
};

}  // namespace minnow::server
