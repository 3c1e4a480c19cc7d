// Render budgets against hostile templates (issue 18): every case of the probe ends in a one-line
// minnow::Error naming what it exceeded, never a crash, a hang or unbounded memory. Budgets are lowered here
// (RenderLimits) so the cases stay fast; the defaults are exercised by tests/py/test_jinja_hostile.py.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <unistd.h>

#include "chat/chat_template.h"
#include "chat/jinja.h"
#include "common/error.h"

using minnow::Error;
using minnow::jinja::RenderLimits;
using minnow::jinja::Template;
using minnow::jinja::Value;

namespace {

RenderLimits small() {
  RenderLimits l;
  l.max_steps = 2'000'000;
  l.max_seconds = 60;  // the step budget, not the clock, ends these (deterministic)
  l.max_string_bytes = 1u << 20;
  l.max_output_bytes = 1u << 20;
  l.max_items = 1u << 16;
  l.max_alloc_bytes = 64u << 20;
  return l;
}

// The render's error message ("" if it rendered). Anything but minnow::Error fails the test.
std::string error_of(const std::string& src, const RenderLimits& limits = small(), std::string* out = nullptr) {
  try {
    Template t(src);
    std::string r = t.render(Value::new_dict(), limits);
    if (out) *out = r;
    return "";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "error messages are one line: " << msg;
    EXPECT_FALSE(msg.empty());
    return msg;
  }
}

std::string rendered(const std::string& src) {
  std::string out;
  std::string err = error_of(src, small(), &out);
  EXPECT_EQ(err, "") << src;
  return out;
}

#define EXPECT_ERROR_HAS(src, what)                                 \
  do {                                                              \
    std::string e_ = error_of(src);                                 \
    EXPECT_NE(e_.find(what), std::string::npos) << (src) << " -> " << e_; \
  } while (0)

const std::string kMin = "(-9223372036854775807 - 1)";

TEST(JinjaBudget, IntegerEdgeCasesAreErrorsOrPythonResults) {
  EXPECT_ERROR_HAS("{{ " + kMin + " // -1 }}", "integer overflow");
  EXPECT_EQ(rendered("{{ " + kMin + " % -1 }}"), "0");
  EXPECT_EQ(rendered("{{ 7 // -1 }} {{ -7 // -1 }} {{ 7 % -1 }}"), "-7 7 0");
  EXPECT_EQ(rendered("{{ " + kMin + " is divisibleby(-1) }}"), "True");
  EXPECT_ERROR_HAS("{{ -" + kMin + " }}", "integer overflow");
  EXPECT_ERROR_HAS("{{ " + kMin + " | abs }}", "integer overflow");
  EXPECT_EQ(rendered("{{ -5 | abs }}"), "5");
  EXPECT_ERROR_HAS("{{ [9223372036854775807, 1] | sum }}", "integer overflow");
  EXPECT_ERROR_HAS("{{ range(" + kMin + ", 9223372036854775807) | length }}", "range()");
  EXPECT_EQ(rendered("{{ range(0, 9223372036854775807, 4611686018427387904) | list }}"), "[0, 4611686018427387904]");
  EXPECT_EQ(rendered("{{ range(9223372036854775807, 9223372036854775806 - 2, -1) | list }}"),
            "[9223372036854775807, 9223372036854775806, 9223372036854775805]");
  EXPECT_EQ(rendered("{{ range(5, 0, -2) | list }}"), "[5, 3, 1]");
  EXPECT_ERROR_HAS("{{ 'ab' * 4611686018427387904 }}", "too large");
  EXPECT_ERROR_HAS("{{ [1, 2] * 4611686018427387904 }}", "too large");
}

TEST(JinjaBudget, LongChainsAreRefusedAtParseNotOverflowed) {
  std::string plus = "{{ 1", filters = "{{ 1", attrs = "{{ x", calls = "{{ x", items = "{{ x";
  for (int k = 0; k < 20000; ++k) {
    plus += " + 1";
    filters += " | string";
    attrs += ".a";
    calls += "()";
    items += "[0]";
  }
  for (auto* s : {&plus, &filters, &attrs, &calls, &items}) EXPECT_ERROR_HAS(*s + " }}", "nested too deeply");
  std::string ok = "{{ 1";
  for (int k = 0; k < 200; ++k) ok += " + 1";
  EXPECT_EQ(rendered(ok + " }}"), "201");
}

TEST(JinjaBudget, EvaluationDepthIsBounded) {
  // 190 nested statements, each level an expression ~250 deep: within the parser's limits, over the evaluator's.
  std::string expr = "1";
  for (int k = 0; k < 240; ++k) expr = "(" + expr + " + 0)";
  std::string src;
  for (int k = 0; k < 190; ++k) src += "{% if " + expr + " %}";
  src += "x";
  for (int k = 0; k < 190; ++k) src += "{% endif %}";
  EXPECT_ERROR_HAS(src, "too deeply");
}

TEST(JinjaBudget, LoopsAndRecursionMeetTheStepBudget) {
  EXPECT_ERROR_HAS("{% for a in range(60000) %}{% for b in range(60000) %}{{ a }}{% endfor %}{% endfor %}",
                   "step budget");
  EXPECT_ERROR_HAS("{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
                   "step budget");
  EXPECT_ERROR_HAS("{% set l = range(60000) | list %}{{ l | unique | length }}", "step budget");
}

TEST(JinjaBudget, TheWallClockAndTheCancellationFlagStopARender) {
  const std::string forever = "{% for a in range(60000) %}{% for b in range(60000) %}{% endfor %}{% endfor %}";
  RenderLimits l = small();
  l.max_steps = UINT64_MAX;
  l.max_seconds = 0.2;
  EXPECT_NE(error_of(forever, l).find("time budget"), std::string::npos);

  std::atomic<bool> cancel{false};
  l.max_seconds = 600;
  l.cancel = &cancel;
  std::thread setter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancel.store(true);
  });
  std::string e = error_of(forever, l);
  setter.join();
  EXPECT_NE(e.find("cancelled"), std::string::npos) << e;
}

TEST(JinjaBudget, SizesAreCapped) {
  EXPECT_ERROR_HAS("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                   "string longer");
  EXPECT_ERROR_HAS("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                   "string longer");
  EXPECT_ERROR_HAS("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
                   "more than");
  EXPECT_ERROR_HAS("{% set l = [0] %}{% for i in range(64) %}{% set _ = l.extend(l) %}{% endfor %}", "more than");
  EXPECT_ERROR_HAS("{{ ['x'] * 2**28 }}", "more than");
  EXPECT_ERROR_HAS("{{ 's' * 2**22 }}", "string longer");
  EXPECT_ERROR_HAS("{{ range(60000) | join('-' * 1000) }}", "string longer");
  EXPECT_ERROR_HAS("{{ '-'.join(['abcdefgh' * 1000] * 60000) }}", "budget");
  EXPECT_ERROR_HAS("{{ {'a': [1, [2]]} | tojson(indent=1000000000) }}", "string longer");
  EXPECT_ERROR_HAS("{{ 'x' | indent(1000000000, true) }}", "string longer");
  EXPECT_ERROR_HAS("{{ '%999999999s' % 'x' }}", "string longer");
  EXPECT_ERROR_HAS("{{ ('{0}' * 100000).format('x' * 1000) }}", "string longer");
  EXPECT_ERROR_HAS("{{ '%400000000000d' % 1 }}", "too large");
  EXPECT_ERROR_HAS("{{ ('a' * 500000).split('a') | length }}", "more than");
  EXPECT_ERROR_HAS("{{ ('a' * 500000).replace('a', 'bbbbb') | length }}", "string longer");
  EXPECT_ERROR_HAS("{{ [1] | batch(1000000000000, 0) }}", "more than");
  // Many medium strings, each within the caps, meet the allocation budget.
  EXPECT_ERROR_HAS("{% set l = [] %}{% for i in range(1000) %}{% set _ = l.append('y' * 500000) %}{% endfor %}",
                   "memory budget");
  // Nested set blocks, each holding its own copy of a big string (within the string and output caps).
  std::string nested = "{% set s = 'x' * 1000000 %}";
  for (int k = 0; k < 100; ++k) nested += "{% set b" + std::to_string(k) + " %}{{ s }}";
  nested += "{{ raise_exception('reached the innermost block with every buffer full') }}";
  for (int k = 0; k < 100; ++k) nested += "{% endset %}";
  EXPECT_ERROR_HAS(nested, "memory budget");
  // The output itself.
  EXPECT_ERROR_HAS("{% for i in range(20000) %}{{ 'z' * 100 }}{% endfor %}", "output exceeded");
  // Exponential repr/tojson of a shared structure.
  EXPECT_ERROR_HAS("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
                   "{{ ns.l | tojson }}",
                   "string longer");
  EXPECT_ERROR_HAS("{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(40) %}{% set ns.a = [ns.a, ns.a] %}"
                   "{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
                   "step budget");
}

TEST(JinjaBudget, RealisticTemplatesStayWellWithinTheDefaults) {
  std::string out;
  EXPECT_EQ(error_of("{% for m in range(2000) %}<|im_start|>user\n{{ 'hello ' * 50 }}<|im_end|>\n{% endfor %}",
                     RenderLimits(), &out),
            "");
  EXPECT_GT(out.size(), 2000u * 300u);
}

TEST(JinjaBudget, DeepChainsOfContainersAreFreedWithoutRecursion) {
  Value v = Value::new_list();
  for (int k = 0; k < 1000000; ++k) v = Value::new_list({v});
  v = Value::none();  // frees a million nested lists: a stack overflow if the destructor recursed
  Value d = Value::new_dict();
  for (int k = 0; k < 1000000; ++k) {
    Value outer = Value::new_dict();
    outer.dict->items.emplace_back(Value::string("k"), d);
    d = outer;
  }
  d = Value::none();
  SUCCEED();
}

TEST(JinjaBudget, DeepJsonIsRefusedBeforeConversion) {
  std::string text(30000, '[');
  text += std::string(30000, ']');
  auto j = nlohmann::ordered_json::parse(text);
  EXPECT_THROW(minnow::check_json_depth(j), Error);
  EXPECT_THROW(minnow::jinja::from_json(j), Error);
  minnow::ChatTemplate t("{{ messages | length }}", "", "");
  auto messages = nlohmann::ordered_json::parse("[" + text + "]");  // parsed, not copied (copies recurse)
  EXPECT_THROW(t.apply(messages, true), Error);
  auto ok = nlohmann::ordered_json::parse("[[[[1]]]]");
  EXPECT_NO_THROW(minnow::check_json_depth(ok));
}

TEST(JinjaBudget, TemplateFilesAreReadBoundedAndOnlyWhenRegular) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("minnow_tmpl_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  EXPECT_THROW(minnow::read_template_file(dir.string()), Error);
  EXPECT_THROW(minnow::read_template_file("/dev/zero"), Error);
  EXPECT_THROW(minnow::read_template_file((dir / "missing").string()), Error);
  fs::path big = dir / "big.jinja";
  { std::ofstream(big) << std::string(minnow::kMaxTemplateFileBytes + 1, 'x'); }
  EXPECT_THROW(minnow::read_template_file(big.string()), Error);
  fs::path good = dir / "good.jinja";
  { std::ofstream(good) << "{{ 1 }}"; }
  EXPECT_EQ(minnow::read_template_file(good.string()), "{{ 1 }}");
  fs::remove_all(dir);
}

}  // namespace
