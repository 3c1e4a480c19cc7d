// gguf_check FILE...: opens each file in-process with GgufFile::open and reports one line per file:
//   PATH<TAB>ok                  accepted (and every value and tensor byte range was touched)
//   PATH<TAB>error<TAB>MESSAGE   rejected with minnow::Error (the only acceptable failure)
//   PATH<TAB>other<TAB>WHAT      any other exception: a bug; the exit code is then 2
// Used by tests/py/test_gguf_malformed.py, also under AddressSanitizer.
#include <cstdio>
#include <exception>
#include <string>

#include "fuzz/gguf_exercise.h"

int main(int argc, char** argv) {
  int rc = 0;
  volatile uint64_t sink = 0;
  for (int i = 1; i < argc; ++i) {
    try {
      auto f = minnow::GgufFile::open(argv[i]);
      sink = sink + minnow::exercise(*f);
      std::printf("%s\tok\n", argv[i]);
    } catch (const minnow::Error& e) {
      std::printf("%s\terror\t%s\n", argv[i], e.what());
    } catch (const std::exception& e) {
      std::printf("%s\tother\t%s\n", argv[i], e.what());
      rc = 2;
    }
  }
  return rc;
}
