#include "common/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace minnow {
namespace {

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO (pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

std::string mib(size_t n) { return std::to_string(n >> 20) + " MiB"; }

}  // namespace

std::string read_input_file(const std::string& path, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO without a writer must not hang; it is refused right after by fstat.
  Fd f{::open(path.c_str(), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC)};
  if (f.fd < 0) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw Error("cannot stat '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error("'" + path + "' is " + kind_of(st.st_mode) + ", not a regular file");
  if (static_cast<unsigned long long>(st.st_size) > max_bytes)
    throw Error("'" + path + "' is " + std::to_string(st.st_size) + " bytes, larger than the limit of " + mib(max_bytes));
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t have = 0;
  for (;;) {
    if (have == out.size()) {
      // The file may have grown (or /proc-like files report size 0): read on, up to the cap.
      if (out.size() > max_bytes)
        throw Error("'" + path + "' grew larger than the limit of " + mib(max_bytes));
      out.resize(std::min(max_bytes + 1, std::max<size_t>(out.size() * 2, 64 * 1024)));
    }
    ssize_t n = ::read(f.fd, out.data() + have, out.size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot read '" + path + "': " + std::strerror(errno));
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  out.resize(have);
  if (have > max_bytes) throw Error("'" + path + "' grew larger than the limit of " + mib(max_bytes));
  return out;
}

}  // namespace minnow
