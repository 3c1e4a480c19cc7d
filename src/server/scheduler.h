#pragma once
// Continuous batching. One scheduler thread owns the Backend. Each step it builds ONE Batch holding one decode
// token for every generating sequence plus prompt chunks of newly admitted sequences, runs it, and hands each
// sequence its logits. Every running job owns one KV slot (seq id) that is cleared when the job leaves.
//
// Determinism: prompts are cut at fixed boundaries (multiples of `chunk`), never depending on load, so a
// sequence's computation is the same alone or batched (the backend promises per-sequence batch invariance).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "common/thread_pool.h"
#include "server/metrics.h"

namespace minnow::server {

enum class FinishReason { Stop, Length, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled", "error"

// A unit of work for the scheduler. Callbacks run on the scheduler thread (or in submit/stop paths).
class Job {
 public:
  virtual ~Job() = default;
  virtual const std::vector<int32_t>& prompt() const = 0;  // [n_prompt], 1 <= n_prompt < n_ctx
  // Logits that follow the sequence so far: [n_vocab] (the job may modify them: they are its own scratch).
  // Return true and set *next to continue with that token, or return false (with *reason) when done.
  // Jobs of one step may be called concurrently from several threads (never one job twice at once).
  virtual bool on_logits(float* logits, int n_vocab, int32_t* next, FinishReason* reason) = 0;
  // The greedy shortcut: when greedy_only() is true at the start of a step, the scheduler may pass the row's
  // Backend::kTopIds most likely ids (Backend::forward_top's order) to on_top instead of the logits to on_logits
  // (same contract), so the backend need not copy that row to the host.
  virtual bool greedy_only() const { return false; }
  virtual bool on_top(const int32_t* ids, int k, int32_t* next, FinishReason* reason);
  // Called exactly once when the job leaves the scheduler, whatever the cause.
  virtual void on_finish(FinishReason reason, const std::string& error) = 0;
  // Thread-safe; the scheduler drops the job (and frees its slot) at its next step.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  int n_slots = 1;             // KV slots (backend n_seq_max)
  int n_ctx = 2048;            // positions per slot
  int n_vocab = 0;             // logits row width
  int max_queue = 64;          // jobs waiting for a slot beyond which submit() refuses
  int chunk = 64;              // prompt chunk size (fixed boundaries)
  int max_prompt_per_step = 256;  // prompt tokens per step (at least one chunk always runs)
  // Decode tokens and each prompt chunk in separate forward passes: 1 always, 0 never, -1 auto = when the
  // backend's kernels depend on the pass size (Backend::invariant_batch() > 0), at most that many sequences are
  // active (so the decode tokens fit one invariant pass) and the whole step would not fit one: every sequence's
  // work then runs in passes shaped as when alone. Under heavier load no split (fewer, larger passes).
  int split_passes = -1;
  // Greedy shortcut (Backend::forward_top for steps with greedy-only jobs): 1 on, 0 off, -1 auto = when the
  // backend prefers it (Backend::prefers_top(): the CUDA backend, which then copies 8 ids instead of a logits row).
  int greedy_shortcut = -1;
  int sample_threads = 0;      // threads running the jobs' on_logits of one step; 0 = auto (1 for a cpu backend)
};

class Scheduler {
 public:
  Scheduler(Backend& backend, SchedulerOptions opt, Metrics* metrics);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  enum class Submit { Ok, QueueFull, Stopped, Invalid };
  // Invalid: empty prompt or prompt too long for the context (the caller should have checked).
  Submit submit(std::shared_ptr<Job> job);
  void cancel_all();  // cancels every queued and running job
  void stop();        // cancels everything still there, finishes it, joins the thread (idempotent)
  bool idle() const;  // nothing queued or running
  int slots_busy() const { return n_active_.load(); }
  int queue_depth() const { return n_queued_.load(); }
  const SchedulerOptions& options() const { return opt_; }

 private:
  struct Active {
    std::shared_ptr<Job> job;
    int slot = 0;
    int n_past = 0;         // tokens already in the slot's cache
    int prompt_pos = 0;     // prompt tokens consumed
    int32_t pending = -1;   // next token to feed (decode phase)
    bool decoding = false;
  };
  void loop();
  void release(Active& a, FinishReason r, const std::string& err);
  void update_gauges();

  Backend& backend_;
  SchedulerOptions opt_;
  Metrics* metrics_;
  Metrics own_metrics_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;  // guarded by mu_
  bool stop_ = false;                       // guarded by mu_
  int running_ = 0;                         // guarded by mu_: jobs holding a slot
  std::atomic<bool> cancel_active_{false};
  std::atomic<int> n_queued_{0};
  std::atomic<int> n_active_{0};

  std::vector<Active> active_;     // scheduler thread only
  std::vector<int> free_slots_;    // scheduler thread only
  std::unique_ptr<ThreadPool> sample_pool_;  // scheduler thread only; null = sample on the scheduler thread
  std::thread thread_;
  bool joined_ = false;
};

}  // namespace minnow::server
