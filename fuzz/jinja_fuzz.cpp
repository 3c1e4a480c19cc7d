// libFuzzer target for the Jinja engine (issue 18): any byte string as a chat template, rendered over a small
// conversation under tight budgets. minnow::Error is the expected way to refuse a template; anything else (another
// exception, a sanitizer report, a crash, a timeout, running out of memory) is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/jinja.h"
#include "common/error.h"

namespace {

const minnow::jinja::Value& context() {
  static const minnow::jinja::Value ctx = [] {
    nlohmann::ordered_json j;
    j["messages"] = nlohmann::ordered_json::array({{{"role", "system"}, {"content", "be brief"}},
                                                   {{"role", "user"}, {"content", "hi {{ x }}"}},
                                                   {{"role", "assistant"}, {"content", "hello"}}});
    j["add_generation_prompt"] = true;
    j["bos_token"] = "<s>";
    j["eos_token"] = "</s>";
    j["tools"] = nullptr;
    return minnow::jinja::from_json(j);
  }();
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  minnow::jinja::RenderLimits limits;  // tight, so each input ends in well under libFuzzer's -timeout
  limits.max_steps = 200'000;
  limits.max_seconds = 2;
  limits.max_string_bytes = 1u << 20;
  limits.max_output_bytes = 1u << 20;
  limits.max_items = 1u << 16;
  limits.max_alloc_bytes = 64u << 20;
  try {
    minnow::jinja::Template t(std::string(reinterpret_cast<const char*>(data), size));
    volatile size_t sink = t.render(context(), limits).size();
    (void)sink;
  } catch (const minnow::Error&) {
  }
  return 0;
}
