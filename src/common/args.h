#pragma once
// llama.cpp-style command-line flags: "-m FILE", "--model FILE", "--model=FILE", boolean switches.
// Unknown flags, missing values and unparsable numbers throw Error with a one-line message.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace minnow {

class ArgParser {
 public:
  explicit ArgParser(std::string command) : command_(std::move(command)) {}
  // names: e.g. {"-m", "--model"}. Each add_* binds a destination that keeps its default if absent.
  void add_string(std::vector<std::string> names, std::string* dst, std::string help);
  void add_int(std::vector<std::string> names, int64_t* dst, std::string help);
  void add_int(std::vector<std::string> names, int* dst, std::string help);
  void add_float(std::vector<std::string> names, double* dst, std::string help);
  // A number that must lie in [lo, hi] (e.g. a probability in [0, 1]); outside it, parse() throws Error.
  void add_float(std::vector<std::string> names, double* dst, std::string help, double lo, double hi);
  void add_flag(std::vector<std::string> names, bool* dst, std::string help);
  // Free-form positional arguments (in order). Without this, positionals are an error.
  void allow_positional(std::vector<std::string>* dst, std::string help);

  // Parses argv[first..argc). Throws Error on bad input. Returns false if --help was given
  // (usage has then been printed to stdout).
  bool parse(int argc, char** argv, int first = 0);
  bool was_set(const std::string& name) const;  // any of an option's names
  std::string usage() const;

 private:
  struct Opt {
    std::vector<std::string> names;
    std::string help;
    bool takes_value;
    std::function<void(const std::string&)> set;  // value ("" for flags)
    bool seen = false;
  };
  Opt* lookup(const std::string& name);
  std::string command_;
  std::vector<Opt> opts_;
  std::vector<std::string>* positional_ = nullptr;
  std::string positional_help_;
};

int64_t parse_int(const std::string& flag, const std::string& s);
double parse_float(const std::string& flag, const std::string& s);

}  // namespace minnow
