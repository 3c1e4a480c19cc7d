// libFuzzer target: any byte string through GgufFile::open_memory. minnow::Error is the expected way to
// reject input; anything else (another exception, a sanitizer report, a crash) is a finding.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz/gguf_exercise.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = minnow::GgufFile::open_memory(std::vector<uint8_t>(data, data + size), "fuzz");
    volatile uint64_t sink = minnow::exercise(*f);
    (void)sink;
  } catch (const minnow::Error&) {
  }
  return 0;
}
