// libFuzzer target: any byte string as the body of an OpenAI request (chat and completions parsers).
// ApiError with a 4xx status is the expected way to reject input; anything else (another exception, a
// sanitizer report, a crash, a 5xx) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/openai_request_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  volatile uint64_t sink = minnow::fuzzing::exercise_openai_request(std::string(reinterpret_cast<const char*>(data), size));
  (void)sink;
  return 0;
}
