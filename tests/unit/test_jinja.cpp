// Jinja engine robustness: hostile or random templates either render or throw minnow::Error (never crash or
// hang); nesting and recursion are bounded; Python float repr facts; render-to-render independence.
// (Byte-for-byte agreement with jinja2 is checked in tests/py/test_jinja_*.py.)
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "chat/jinja.h"
#include "common/error.h"

using minnow::Error;
using minnow::jinja::Template;
using minnow::jinja::Value;

namespace {

Value context() {
  nlohmann::ordered_json j;
  j["messages"] = nlohmann::ordered_json::array({{{"role", "system"}, {"content", "sys"}},
                                                 {{"role", "user"}, {"content", "hi {{ x }}"}}});
  j["add_generation_prompt"] = true;
  j["bos_token"] = "<s>";
  j["x"] = nullptr;
  return minnow::jinja::from_json(j);
}

// Renders; returns true if it rendered, false if it threw minnow::Error. Anything else fails the test.
bool render_or_error(const std::string& src, std::string* out = nullptr) {
  try {
    Template t(src);
    std::string r = t.render(context());
    if (out) *out = r;
    return true;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find_first_not_of(' '), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "error messages are one line";
    return false;
  }
}

TEST(Jinja, RandomTokenSoupNeverCrashes) {
  const std::vector<std::string> alphabet = {
      "{{", "}}", "{%", "%}", "{#", "#}", "{{-", "-}}", "{%-", "-%}", " if ", " for ", " x ", " in ", "messages",
      " endif ", " endfor ", "(", ")", "[", "]", "{", "}", "'s'", "\"q\"", "1", "2.5", "|", "length", "-", " ",
      "\n", " set ", "=", " macro ", " endmacro ", " not ", "+", "*", "/", "//", "%", "**", ".", "role", ",", ":",
      " else ", " elif ", "loop", " raw ", " endraw ", "~", " is ", " defined ", "namespace", "ns", " break ",
      "content", "trim", "tojson", "upper", "m", "[0]", "[-1]", "[::-1]", " and ", " or ", "none", "true",
      "range(3)", "join", "items()", "selectattr", "'equalto'", "==", "!=", "<", ">", " call ", " endcall ",
      " filter ", " endfilter ", " endset ", "caller()", "raise_exception('boom')", "strftime_now('%Y')"};
  std::mt19937 rng(1234);
  int rendered = 0, errors = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string src;
    int n = 1 + static_cast<int>(rng() % 24);
    for (int k = 0; k < n; ++k) src += alphabet[rng() % alphabet.size()];
    (render_or_error(src) ? rendered : errors)++;
  }
  EXPECT_GT(rendered, 100);
  EXPECT_GT(errors, 100);
}

TEST(Jinja, RandomBytesNeverCrash) {
  std::mt19937 rng(99);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string src;
    int n = static_cast<int>(rng() % 64);
    for (int k = 0; k < n; ++k) {
      int r = static_cast<int>(rng() % 10);
      src.push_back(r < 4 ? "{}%#-+ '\"\\"[rng() % 10] : static_cast<char>(rng() % 256));
    }
    render_or_error(src);
  }
}

TEST(Jinja, DeepNestingIsAnErrorNotAStackOverflow) {
  std::string parens = "{{ " + std::string(20000, '(') + "1" + std::string(20000, ')') + " }}";
  EXPECT_FALSE(render_or_error(parens));
  std::string nots = "{{ ";
  for (int k = 0; k < 20000; ++k) nots += "not ";
  nots += "1 }}";
  EXPECT_FALSE(render_or_error(nots));
  std::string ifs;
  for (int k = 0; k < 20000; ++k) ifs += "{% if true %}";
  EXPECT_FALSE(render_or_error(ifs));
  std::string lists = "{{ " + std::string(20000, '[') + std::string(20000, ']') + " }}";
  EXPECT_FALSE(render_or_error(lists));
  // Moderate nesting is fine.
  std::string out;
  ASSERT_TRUE(render_or_error("{{ " + std::string(50, '(') + "7" + std::string(50, ')') + " }}", &out));
  EXPECT_EQ(out, "7");
}

TEST(Jinja, UnboundedRecursionAndCyclesAreErrors) {
  EXPECT_FALSE(render_or_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"));
  EXPECT_FALSE(render_or_error("{% set l = [] %}{% set _ = l.append(l) %}{{ l }}"));
  EXPECT_FALSE(render_or_error("{% set l = [] %}{% set _ = l.append(l) %}{{ l | tojson }}"));
  EXPECT_FALSE(render_or_error("{% set d = {} %}{% set _ = d.update({'a': d}) %}{{ d == d.a }}{{ d }}"));
  EXPECT_FALSE(render_or_error("{{ 'x' * 100000000000 }}"));
  EXPECT_FALSE(render_or_error("{{ range(100000000000) | length }}"));
  EXPECT_FALSE(render_or_error("{{ 9223372036854775807 + 1 }}"));
}

// Lists and dicts tied into cycles during a render are freed when it ends (shared references alone never would),
// also when the render fails; the caller's context is never changed by the template.
TEST(Jinja, CyclesMadeDuringARenderAreFreedAndTheContextIsUntouched) {
  std::vector<std::weak_ptr<minnow::jinja::ListData>> lists;
  std::vector<std::weak_ptr<minnow::jinja::DictData>> dicts;
  Value ctx = context();
  ctx.dict->set(Value::string("watch"), Value::function("watch", [&](minnow::jinja::CallArgs& a) {
                  for (const Value& v : a.pos) {
                    if (v.is_list()) lists.push_back(v.list);
                    if (v.is_dict()) dicts.push_back(v.dict);
                  }
                  return Value::string("");
                }));
  const Value messages = ctx.dict->find("messages") ? *ctx.dict->find("messages") : Value::none();
  ASSERT_TRUE(messages.is_list());
  const size_t n_messages = messages.list->items.size();
  const char* sources[] = {
      "{% set l = [1] %}{% set _ = l.append(l) %}{{ watch(l) }}",
      "{% set d = {} %}{% set _ = d.update({'a': d}) %}{{ watch(d) }}",
      "{% set ns = namespace(x=[]) %}{% set _ = ns.x.append(ns) %}{{ watch(ns, ns.x) }}",
      "{% set _ = messages.append(messages) %}{{ watch(messages) }}",
      "{% set l = [] %}{% set _ = l.append(l) %}{{ watch(l) }}{{ raise_exception('stop') }}",
  };
  for (const char* src : sources) {
    lists.clear();
    dicts.clear();
    try {
      Template(src).render(ctx);
    } catch (const Error&) {
    }
    ASSERT_FALSE(lists.empty() && dicts.empty()) << src;
    for (auto& w : lists) EXPECT_TRUE(w.expired()) << "a list outlived the render of " << src;
    for (auto& w : dicts) EXPECT_TRUE(w.expired()) << "a dict outlived the render of " << src;
    EXPECT_EQ(messages.list->items.size(), n_messages) << src;
  }
  // The mechanism itself: without an arena a cycle outlives its last handle (here broken by hand).
  std::weak_ptr<minnow::jinja::ListData> w;
  {
    Value l = Value::new_list();
    l.list->items.push_back(l);
    w = l.list;
  }
  ASSERT_FALSE(w.expired());
  w.lock()->items.clear();
  EXPECT_TRUE(w.expired());
}

TEST(Jinja, ManyTags) {
  std::string many_tags;
  for (int k = 0; k < 20000; ++k) many_tags += "{{ k }}{# c #}text\n";
  std::string out;
  ASSERT_TRUE(render_or_error(many_tags, &out));
  EXPECT_EQ(out.size(), std::string("text\n").size() * 20000 - 1);  // trailing newline of the source dropped
}

TEST(Jinja, PythonFloatRepr) {
  // Python's repr() of these floats (language facts, independent of this implementation).
  const std::pair<double, const char*> cases[] = {
      {0.1, "0.1"},       {1.0, "1.0"},       {-0.0, "-0.0"},   {100.0, "100.0"},  {1.5, "1.5"},
      {1e16, "1e+16"},    {1e15, "1000000000000000.0"},          {1e-5, "1e-05"},   {0.0001, "0.0001"},
      {2.5e-7, "2.5e-07"}, {1e22, "1e+22"},   {123456789012345680.0, "1.2345678901234568e+17"},
      {1.0 / 3, "0.3333333333333333"},        {2.0 / 3, "0.6666666666666666"},     {-12.75, "-12.75"},
      {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
  };
  for (auto& [d, want] : cases) EXPECT_EQ(minnow::jinja::py_float_repr(d), want) << d;
}

TEST(Jinja, TemplateIsReusableAndRendersAreIndependent) {
  Template t("{% set _ = messages.append({'role': 'x'}) %}{{ messages | length }}");
  Value ctx1 = context(), ctx2 = context();
  EXPECT_EQ(t.render(ctx1), "3");
  EXPECT_EQ(t.render(ctx2), "3");
}

TEST(Jinja, ErrorsNameTheLine) {
  try {
    Template t("a\nb\n{% if x %}\n{% include 'f' %}\n{% endif %}");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("line 4"), std::string::npos) << m;
    EXPECT_NE(m.find("include"), std::string::npos) << m;
  }
  try {
    Template t("line1\n{{ x.y.z }}");
    t.render(context());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

}  // namespace
