// minnow: one binary, many subcommands (run, score, tokenize, info, perplexity, bench, ...).
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>

#include "app/commands.h"
#include "common/error.h"

namespace minnow {
std::map<std::string, CommandInfo>& command_registry() {
  static std::map<std::string, CommandInfo> r;
  return r;
}
}  // namespace minnow

static void print_usage() {
  std::fputs("usage: minnow <command> [options]\n\ncommands:\n", stderr);
  for (auto& [name, info] : minnow::command_registry())
    std::fprintf(stderr, "  %-12s %s\n", name.c_str(), info.summary.c_str());
  std::fputs("\nrun 'minnow <command> --help' for a command's options\n", stderr);
}

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    print_usage();
    return 1;
  }
  std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    print_usage();
    return 0;
  }
  auto& reg = minnow::command_registry();
  auto it = reg.find(cmd);
  if (it == reg.end()) {
    std::fprintf(stderr, "error: unknown command '%s' (try 'minnow --help')\n", cmd.c_str());
    return 1;
  }
  try {
    return it->second.fn(argc - 1, argv + 1);
  } catch (const minnow::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
