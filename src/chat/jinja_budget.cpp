#include "chat/jinja_budget.h"

#include <cstdio>
#include <string>

#include "common/error.h"

namespace minnow::jinja {

namespace {
thread_local RenderBudget* t_budget = nullptr;
constexpr uint64_t kCheckEvery = 256;  // steps between clock / cancellation checks

std::string mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }
std::string seconds(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g s", s);
  return b;
}
}  // namespace

RenderBudget::RenderBudget(const RenderLimits& limits)
    : limits_(limits),
      next_check_(kCheckEvery),
      deadline_(std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(limits.max_seconds))),
      outer_(t_budget) {
  t_budget = this;
}

RenderBudget::~RenderBudget() { t_budget = outer_; }

RenderBudget* RenderBudget::current() { return t_budget; }

void RenderBudget::slow_check() {
  next_check_ = steps_ + kCheckEvery;
  if (steps_ > limits_.max_steps)
    throw Error("template exceeded its step budget (" + std::to_string(limits_.max_steps) + " steps)");
  if (limits_.cancel && limits_.cancel->load(std::memory_order_relaxed)) throw Error("template render cancelled");
  if (std::chrono::steady_clock::now() > deadline_)
    throw Error("template exceeded its time budget (" + seconds(limits_.max_seconds) + ")");
}

void RenderBudget::alloc(uint64_t bytes) {
  if (__builtin_add_overflow(allocated_, bytes, &allocated_)) allocated_ = UINT64_MAX;
  if (allocated_ > limits_.max_alloc_bytes)
    throw Error("template exceeded its memory budget (" + mib(limits_.max_alloc_bytes) + " allocated)");
}

void budget_step(uint64_t n) {
  if (t_budget) t_budget->step(n);
}

void budget_string_size(size_t bytes) {
  if (t_budget && bytes > t_budget->limits().max_string_bytes)
    throw Error("template made a string longer than " + mib(t_budget->limits().max_string_bytes));
}

void budget_string(size_t bytes) {
  if (!t_budget) return;
  budget_string_size(bytes);
  t_budget->alloc(bytes);
  t_budget->step(1 + bytes / 4096);
}

void budget_items_size(size_t n) {
  if (t_budget && n > t_budget->limits().max_items)
    throw Error("template made a list or dict of more than " + std::to_string(t_budget->limits().max_items) +
                " items");
}

void budget_items(size_t n, uint64_t bytes) {
  if (!t_budget) return;
  budget_items_size(n);
  uint64_t total = 0;
  if (__builtin_add_overflow(static_cast<uint64_t>(n) * 16, bytes, &total)) total = UINT64_MAX;
  t_budget->alloc(total);
  t_budget->step(1 + n / 64 + bytes / 4096);
}

void budget_output(size_t total, size_t added) {
  if (!t_budget) return;
  if (total > t_budget->limits().max_output_bytes)
    throw Error("template output exceeded " + mib(t_budget->limits().max_output_bytes));
  t_budget->alloc(added);  // nested set/filter blocks each hold their own buffer
}

BudgetDepth::BudgetDepth() : b_(t_budget) {
  if (!b_) return;
  if (++b_->depth() > b_->limits().max_depth) {
    --b_->depth();
    throw Error("template nested or recursed too deeply (evaluation depth over " +
                std::to_string(b_->limits().max_depth) + ")");
  }
}

BudgetDepth::~BudgetDepth() {
  if (b_) --b_->depth();
}

}  // namespace minnow::jinja
