#pragma once
// Budgets for one render of an untrusted template (chat templates ship inside model files). While a
// RenderBudget lives on a thread, the engine charges it: a step for every statement, expression, call and
// element compared or copied; the wall clock and the caller's cancellation flag are checked every few hundred
// steps; strings, lists, dicts, the output and the bytes allocated are capped; evaluator recursion is bounded.
// Exceeding any of these throws minnow::Error with a one-line message naming the budget. Without a live
// RenderBudget (values built outside a render) the checks do nothing.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace minnow::jinja {

struct RenderLimits {
  uint64_t max_steps = 20'000'000;            // statements + expressions + elements touched
  double max_seconds = 5.0;                   // wall clock per render
  size_t max_output_bytes = 32u << 20;        // the rendered text
  size_t max_string_bytes = 32u << 20;        // any one string
  size_t max_items = 1u << 20;                // any one list or dict
  uint64_t max_alloc_bytes = 1ull << 30;      // strings and container slots made during the render, in total
  int max_depth = 400;                        // evaluator recursion (expressions, statements, macro calls)
  const std::atomic<bool>* cancel = nullptr;  // set by the caller (shutdown, client gone): the render stops
};

class RenderBudget {
 public:
  explicit RenderBudget(const RenderLimits& limits);
  ~RenderBudget();
  RenderBudget(const RenderBudget&) = delete;
  RenderBudget& operator=(const RenderBudget&) = delete;

  static RenderBudget* current();  // this thread's innermost live budget, or nullptr
  const RenderLimits& limits() const { return limits_; }

  void step(uint64_t n = 1) {
    steps_ += n;
    if (steps_ >= next_check_) slow_check();
  }
  void alloc(uint64_t bytes);
  int& depth() { return depth_; }

 private:
  void slow_check();
  RenderLimits limits_;
  uint64_t steps_ = 0;
  uint64_t next_check_ = 0;
  uint64_t allocated_ = 0;
  int depth_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  RenderBudget* outer_;
};

// Charges against this thread's budget; no-ops without one.
void budget_step(uint64_t n = 1);
void budget_string(size_t bytes);  // a string of this size is being made: size cap + allocation charge
void budget_string_size(size_t bytes);  // size cap only (checked while a string grows)
void budget_items(size_t n, uint64_t bytes);  // a list/dict of n items (bytes of strings copied in)
void budget_items_size(size_t n);   // item-count cap only (checked while a list grows)
void budget_output(size_t total, size_t added);  // an output (or set/filter block) grew by `added` to `total`

// One level of evaluator recursion; throws past max_depth.
class BudgetDepth {
 public:
  BudgetDepth();
  ~BudgetDepth();
  BudgetDepth(const BudgetDepth&) = delete;
  BudgetDepth& operator=(const BudgetDepth&) = delete;

 private:
  RenderBudget* b_;
};

}  // namespace minnow::jinja
