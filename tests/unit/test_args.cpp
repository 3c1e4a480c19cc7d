#include <gtest/gtest.h>

#include "common/args.h"
#include "common/error.h"

using namespace minnow;

TEST(Args, ParsesLlamaStyleFlags) {
  std::string model;
  int n = 16;
  double temp = 0.8;
  bool json = false;
  ArgParser p("run");
  p.add_string({"-m", "--model"}, &model, "model");
  p.add_int({"-n", "--n-predict"}, &n, "tokens");
  p.add_float({"--temp"}, &temp, "temperature");
  p.add_flag({"--json"}, &json, "json");
  const char* argv[] = {"run", "-m", "x.gguf", "--n-predict=5", "--temp", "0", "--json"};
  ASSERT_TRUE(p.parse(7, const_cast<char**>(argv), 1));
  EXPECT_EQ(model, "x.gguf");
  EXPECT_EQ(n, 5);
  EXPECT_EQ(temp, 0.0);
  EXPECT_TRUE(json);
  EXPECT_TRUE(p.was_set("--model"));
}

TEST(Args, RejectsBadInput) {
  int n = 0;
  ArgParser p("run");
  p.add_int({"-n"}, &n, "tokens");
  const char* bad1[] = {"run", "-n", "abc"};
  EXPECT_THROW(p.parse(3, const_cast<char**>(bad1), 1), Error);
  const char* bad2[] = {"run", "--nope"};
  EXPECT_THROW(p.parse(2, const_cast<char**>(bad2), 1), Error);
  const char* bad3[] = {"run", "-n"};
  EXPECT_THROW(p.parse(2, const_cast<char**>(bad3), 1), Error);
  const char* neg[] = {"run", "-n", "-3"};
  EXPECT_TRUE(p.parse(3, const_cast<char**>(neg), 1));
  EXPECT_EQ(n, -3);
}
