#pragma once
// std::thread whose creation failure (too many threads, no memory for a stack) is a one-line minnow::Error
// naming what could not start, instead of a bare std::system_error.
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "common/error.h"

namespace minnow {

template <class F>
std::thread start_thread(const std::string& what, F&& fn) {
  try {
    return std::thread(std::forward<F>(fn));
  } catch (const std::system_error& e) {
    throw Error("cannot start the " + what + " thread (" + e.what() + ")");
  }
}

}  // namespace minnow
