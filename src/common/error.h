#pragma once
// One exception type for every user-facing failure. Its message is a single line that names the problem;
// the command-line front end prints it as "error: <message>" and exits 1.
#include <stdexcept>
#include <string>

namespace minnow {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace minnow
