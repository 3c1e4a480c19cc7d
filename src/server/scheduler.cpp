#include "server/scheduler.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <stdexcept>

#include "common/start_thread.h"

namespace minnow::server {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
  }
  return "error";
}

Scheduler::Scheduler(Backend& backend, SchedulerOptions opt, Metrics* metrics)
    : backend_(backend), opt_(opt), metrics_(metrics ? metrics : &own_metrics_) {
  if (opt_.n_slots < 1) opt_.n_slots = 1;
  if (opt_.chunk < 1) opt_.chunk = 1;
  if (opt_.max_prompt_per_step < opt_.chunk) opt_.max_prompt_per_step = opt_.chunk;
  if (opt_.max_queue < 0) opt_.max_queue = 0;
  for (int s = opt_.n_slots - 1; s >= 0; --s) free_slots_.push_back(s);  // pop_back gives the lowest
  if (opt_.sample_threads <= 0) {
    // A CPU backend already keeps every core busy (and its pool spins between passes): sample on this thread.
    unsigned hw = std::thread::hardware_concurrency();
    opt_.sample_threads = (hw >= 8 && backend_.name() != "cpu") ? static_cast<int>(std::min(8u, hw / 2)) : 1;
  }
  if (opt_.sample_threads > 1) sample_pool_ = std::make_unique<ThreadPool>(opt_.sample_threads);
  metrics_->slots_total.store(opt_.n_slots);
  metrics_->slots_busy.store(0);
  metrics_->queue_depth.store(0);
  thread_ = start_thread("scheduler", [this] { loop(); });
}

Scheduler::~Scheduler() { stop(); }

Scheduler::Submit Scheduler::submit(std::shared_ptr<Job> job) {
  const auto& p = job->prompt();
  if (p.empty() || static_cast<int64_t>(p.size()) >= opt_.n_ctx) return Submit::Invalid;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_) return Submit::Stopped;
    // Room for n_slots running jobs plus max_queue waiting ones.
    if (static_cast<int>(queue_.size()) + running_ >= opt_.max_queue + opt_.n_slots) return Submit::QueueFull;
    queue_.push_back(std::move(job));
    n_queued_.store(static_cast<int>(queue_.size()));
    metrics_->queue_depth.store(static_cast<int64_t>(queue_.size()));  // under the lock: never stale
  }
  cv_.notify_all();
  return Submit::Ok;
}

void Scheduler::cancel_all() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& j : queue_) j->cancel();
  }
  cancel_active_.store(true);
  cv_.notify_all();
}

bool Scheduler::idle() const { return n_queued_.load() == 0 && n_active_.load() == 0; }

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (joined_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lk(mu_);
  joined_ = true;
}

void Scheduler::update_gauges() {
  n_active_.store(static_cast<int>(active_.size()));
  metrics_->slots_busy.store(static_cast<int64_t>(active_.size()));
}

void Scheduler::release(Active& a, FinishReason r, const std::string& err) {
  try {
    backend_.seq_clear(a.slot);
  } catch (...) {
  }
  free_slots_.push_back(a.slot);
  {
    std::lock_guard<std::mutex> lk(mu_);
    --running_;
  }
  std::sort(free_slots_.begin(), free_slots_.end(), std::greater<int>());
  // The gauges drop before the job hears it is done, so a client that got its answer sees its slot free.
  n_active_.fetch_sub(1);
  metrics_->slots_busy.fetch_sub(1);
  auto job = std::move(a.job);
  try {
    job->on_finish(r, err);
  } catch (...) {
  }
}

bool Job::on_top(const int32_t*, int, int32_t*, FinishReason*) {
  throw std::logic_error("job has no greedy shortcut");
}

void Scheduler::loop() {
  std::vector<float> logits;
  Batch batch;
  std::vector<size_t> row_owner;  // [n_rows] index into active_ for each logits row
  std::vector<int32_t> top;        // [n_rows][Backend::kTopIds] with the greedy shortcut
  std::vector<uint8_t> top_only;   // [n_rows] 1: the row comes back as top ids only
  for (;;) {
    std::vector<std::shared_ptr<Job>> dropped;  // cancelled before admission
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty() || !active_.empty(); });
      stopping = stop_;
      // Drop cancelled waiting jobs, then admit into free slots in arrival order.
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->cancelled() || stopping) {
          dropped.push_back(std::move(*it));
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      while (!stopping && !queue_.empty() && !free_slots_.empty()) {
        Active a;
        a.job = std::move(queue_.front());
        queue_.pop_front();
        a.slot = free_slots_.back();
        free_slots_.pop_back();
        try {
          backend_.seq_clear(a.slot);
        } catch (...) {
        }
        active_.push_back(std::move(a));
        ++running_;
      }
      n_queued_.store(static_cast<int>(queue_.size()));
      metrics_->queue_depth.store(static_cast<int64_t>(queue_.size()));
    }
    update_gauges();
    for (auto& j : dropped) {
      try {
        j->on_finish(FinishReason::Cancelled, "");
      } catch (...) {
      }
    }
    // Cancellations of running jobs.
    bool cancel_all_now = cancel_active_.exchange(false) || stopping;
    for (size_t i = 0; i < active_.size();) {
      if (cancel_all_now || active_[i].job->cancelled()) {
        release(active_[i], FinishReason::Cancelled, "");
        active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
    update_gauges();
    if (stopping) break;
    if (active_.empty()) continue;

    // Build one batch: decode tokens first, then prompt chunks (fixed boundaries) within the budget.
    batch = Batch{};
    row_owner.clear();
    for (size_t i = 0; i < active_.size(); ++i) {
      Active& a = active_[i];
      if (!a.decoding) continue;
      batch.add(a.pending, a.n_past, a.slot, true);
      row_owner.push_back(i);
    }
    const size_t n_decode = batch.size();
    int prompt_budget = opt_.max_prompt_per_step;
    int prompt_in_batch = 0;
    std::vector<std::pair<size_t, int>> chunks;  // (active index, chunk length)
    for (size_t i = 0; i < active_.size(); ++i) {
      Active& a = active_[i];
      if (a.decoding) continue;
      const auto& p = a.job->prompt();
      int n_prompt = static_cast<int>(p.size());
      int end = std::min(n_prompt, (a.prompt_pos / opt_.chunk + 1) * opt_.chunk);
      int len = end - a.prompt_pos;
      if (prompt_in_batch > 0 && prompt_in_batch + len > prompt_budget) continue;
      for (int k = a.prompt_pos; k < end; ++k) {
        bool last = (k == n_prompt - 1);
        batch.add(p[k], k, a.slot, last);
        if (last) row_owner.push_back(i);
      }
      prompt_in_batch += len;
      chunks.push_back({i, len});
    }
    // Rows come back in batch order: decode rows first (in active order), then prompt-final rows in order.
    // With the greedy shortcut, greedy-only rows come back as top ids and the others as logits rows.
    logits.clear();
    top.clear();
    const bool use_top = opt_.greedy_shortcut > 0 || (opt_.greedy_shortcut < 0 && backend_.prefers_top());
    top_only.assign(row_owner.size(), 0);
    size_t n_full = row_owner.size();
    if (use_top) {
      for (size_t r = 0; r < row_owner.size(); ++r) top_only[r] = active_[row_owner[r]].job->greedy_only() ? 1 : 0;
      for (uint8_t f : top_only) n_full -= f;
    }
    auto pass = [&](const Batch& b, size_t row0, size_t rows) {
      if (use_top) {
        const std::vector<uint8_t> flags(top_only.begin() + static_cast<std::ptrdiff_t>(row0),
                                         top_only.begin() + static_cast<std::ptrdiff_t>(row0 + rows));
        backend_.forward_top(b, flags, logits, top);
      } else {
        backend_.forward(b, logits);
      }
      metrics_->forward_passes.fetch_add(1);
    };
    std::string error;
    auto t_step = std::chrono::steady_clock::now();
    try {
      const size_t limit = static_cast<size_t>(std::max(0, backend_.invariant_batch()));
      // auto: while no more sequences are active than the backend computes invariantly in one pass (then the
      // decode tokens always fit one such pass); beyond that the promise does not hold anyway, and splitting
      // would only multiply the large passes.
      const bool split = opt_.split_passes > 0 || (opt_.split_passes < 0 && limit > 0 && active_.size() <= limit &&
                                                   batch.size() > limit);
      if (!split) {
        pass(batch, 0, row_owner.size());
      } else {
        // One pass for the decode tokens, then one per prompt chunk: each sequence's work is computed in a
        // batch of the same shape as when it runs alone (for backends whose numerics depend on batch size).
        std::vector<size_t> cuts = {0, n_decode};
        for (auto& c : chunks) cuts.push_back(cuts.back() + static_cast<size_t>(c.second));
        size_t row0 = 0;
        for (size_t k = 0; k + 1 < cuts.size(); ++k) {
          if (cuts[k] == cuts[k + 1]) continue;
          Batch part;
          size_t rows = 0;
          for (size_t t = cuts[k]; t < cuts[k + 1]; ++t) {
            part.add(batch.tokens[t], batch.pos[t], batch.seq[t], batch.want_logits[t] != 0);
            rows += batch.want_logits[t] ? 1 : 0;
          }
          pass(part, row0, rows);
          row0 += rows;
        }
      }
      if (logits.size() != n_full * static_cast<size_t>(opt_.n_vocab))
        error = "backend returned " + std::to_string(logits.size()) + " logits, expected " +
                std::to_string(n_full * static_cast<size_t>(opt_.n_vocab));
      if (use_top && top.size() != row_owner.size() * static_cast<size_t>(Backend::kTopIds))
        error = "backend returned " + std::to_string(top.size()) + " top ids, expected " +
                std::to_string(row_owner.size() * static_cast<size_t>(Backend::kTopIds));
    } catch (const std::exception& e) {
      error = std::string("forward pass failed: ") + e.what();
    } catch (...) {
      error = "forward pass failed";
    }
    auto t_fwd = std::chrono::steady_clock::now();
    metrics_->forward_us.fetch_add(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(t_fwd - t_step).count()));
    metrics_->batch_tokens.fetch_add(batch.size());
    std::vector<uint8_t> remove(active_.size(), 0);
    if (!error.empty()) {
      // Every sequence in this batch is now in an unknown state: fail them all.
      for (size_t i = 0; i < active_.size(); ++i) {
        bool in_batch = active_[i].decoding;
        for (auto& c : chunks) in_batch |= (c.first == i);
        if (in_batch) {
          release(active_[i], FinishReason::Error, error);
          remove[i] = 1;
        }
      }
    } else {
      for (auto& c : chunks) {
        active_[c.first].prompt_pos += c.second;
        active_[c.first].n_past += c.second;
      }
      metrics_->prompt_tokens.fetch_add(static_cast<uint64_t>(prompt_in_batch));
      // The jobs' sampling and text work, in parallel across rows when there are many.
      const size_t n_rows = row_owner.size();
      std::vector<int32_t> nexts(n_rows, -1);
      std::vector<uint8_t> gos(n_rows, 0);
      std::vector<FinishReason> reasons(n_rows, FinishReason::Stop);
      std::vector<std::string> errs(n_rows);
      std::vector<size_t> lrow(n_rows, 0);  // each full row's place in `logits`
      for (size_t r = 0, k = 0; r < n_rows; ++r)
        if (!top_only[r]) lrow[r] = k++;
      auto work = [&](int64_t begin, int64_t end, int) {
        for (int64_t r = begin; r < end; ++r) {
          try {
            Job& job = *active_[row_owner[r]].job;
            if (top_only[r])
              gos[r] = job.on_top(top.data() + r * Backend::kTopIds, Backend::kTopIds, &nexts[r], &reasons[r]);
            else
              gos[r] = job.on_logits(logits.data() + lrow[r] * static_cast<size_t>(opt_.n_vocab), opt_.n_vocab,
                                     &nexts[r], &reasons[r]);
          } catch (const std::exception& e) {
            gos[r] = 0;
            reasons[r] = FinishReason::Error;
            errs[r] = e.what();
          } catch (...) {
            gos[r] = 0;
            reasons[r] = FinishReason::Error;
            errs[r] = "job failed";
          }
        }
      };
      if (sample_pool_ && n_rows >= 8) sample_pool_->parallel_for(static_cast<int64_t>(n_rows), work);
      else work(0, static_cast<int64_t>(n_rows), 0);
      for (size_t r = 0; r < n_rows; ++r) {
        Active& a = active_[row_owner[r]];
        if (a.decoding) a.n_past += 1;  // the pending token is now in the cache
        int32_t next = nexts[r];
        FinishReason reason = reasons[r];
        bool go = gos[r] != 0;
        std::string err = std::move(errs[r]);
        if (go && (next < 0 || next >= opt_.n_vocab)) {
          go = false;
          reason = FinishReason::Error;
          err = "sampled token id out of range";
        }
        if (go && a.n_past >= opt_.n_ctx) {  // no room to feed the token: the context is full
          go = false;
          reason = FinishReason::Length;
        }
        if (!go) {
          release(a, reason, err);
          remove[row_owner[r]] = 1;
          continue;
        }
        a.decoding = true;
        a.pending = next;
      }
    }
    std::vector<Active> kept;
    kept.reserve(active_.size());
    for (size_t i = 0; i < active_.size(); ++i)
      if (!remove[i]) kept.push_back(std::move(active_[i]));
    active_ = std::move(kept);
    update_gauges();
    metrics_->step_us.fetch_add(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                          std::chrono::steady_clock::now() - t_step)
                                                          .count()));
  }
  // Stopping: whatever is left has been cancelled above.
  for (auto& a : active_) release(a, FinishReason::Cancelled, "");
  active_.clear();
  update_gauges();
}

}  // namespace minnow::server
