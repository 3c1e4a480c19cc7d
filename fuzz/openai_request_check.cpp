// openai_request_check FILE...: each file's bytes as an OpenAI request body through parse_json_object and the
// chat and completions parsers (fuzz/openai_request_exercise.h), in-process. One line per file:
//   PATH<TAB>done              parsed or rejected with a 4xx ApiError (the only acceptable outcomes)
//   PATH<TAB>other<TAB>WHAT    anything else escaped: a bug; the exit code is then 2
// Replays the fuzzer's seed corpus and findings without libFuzzer (also under AddressSanitizer).
#include <cstdio>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>

#include "fuzz/openai_request_exercise.h"

int main(int argc, char** argv) {
  int rc = 0;
  volatile uint64_t sink = 0;
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::printf("%s\tother\tcannot open\n", argv[i]);
      rc = 2;
      continue;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    try {
      sink = sink + minnow::fuzzing::exercise_openai_request(ss.str());
      std::printf("%s\tdone\n", argv[i]);
    } catch (const minnow::server::ApiError& e) {
      std::printf("%s\tother\tHTTP %d: %s\n", argv[i], e.status, e.what());
      rc = 2;
    } catch (const std::exception& e) {
      std::printf("%s\tother\t%s\n", argv[i], e.what());
      rc = 2;
    }
  }
  return rc;
}
