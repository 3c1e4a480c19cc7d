#pragma once
// Subcommand registry: each app/cmd_*.cpp registers itself with a static MINNOW_COMMAND(...).
#include <functional>
#include <map>
#include <string>

namespace minnow {

using CommandFn = std::function<int(int argc, char** argv)>;  // argv[0] is the subcommand name

struct CommandInfo {
  std::string summary;
  CommandFn fn;
};

std::map<std::string, CommandInfo>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(const std::string& name, const std::string& summary, CommandFn fn) {
    command_registry()[name] = CommandInfo{summary, std::move(fn)};
  }
};

}  // namespace minnow

#define MINNOW_CONCAT_(a, b) a##b
#define MINNOW_CONCAT(a, b) MINNOW_CONCAT_(a, b)
#define MINNOW_COMMAND(name, summary, fn) \
  static ::minnow::CommandRegistrar MINNOW_CONCAT(minnow_cmd_, __LINE__)(name, summary, fn)
