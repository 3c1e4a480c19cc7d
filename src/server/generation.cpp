#include "server/generation.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace minnow::server {

size_t utf8_complete_prefix(const std::string& s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + len > n) {
      // Incomplete only if what is there so far is made of continuation bytes; otherwise it is just invalid.
      bool cont = true;
      for (size_t k = i + 1; k < n; ++k) cont &= (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80;
      if (cont) break;
      len = 1;
    } else {
      for (size_t k = 1; k < len; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
          len = 1;  // broken sequence: pass the lead byte through as is
          break;
        }
    }
    i += len;
  }
  return i;
}

GenerationJob::GenerationJob(GenParams params, const ServerModel& model, Metrics* metrics,
                             Clock::time_point arrival)
    : params_(std::move(params)), model_(model), metrics_(metrics), arrival_(arrival), last_token_(arrival),
      sampler_(params_.sampling) {}

bool GenerationJob::on_logits(float* logits, int n_vocab, int32_t* next, FinishReason* reason) {
  if (n_generated_ >= params_.max_tokens) {
    *reason = FinishReason::Length;
    return false;
  }
  if (params_.ignore_eos) {
    if (!eog_known_) {
      for (int32_t t = 0; t < n_vocab; ++t)
        if (model_.is_eog(t)) eog_ids_.push_back(t);
      eog_known_ = true;
    }
    for (int32_t t : eog_ids_) logits[t] = -INFINITY;
  }
  return accept(sampler_.sample(logits, n_vocab), next, reason);
}

bool GenerationJob::greedy_only() const {
  const SamplingParams& sp = params_.sampling;
  return sp.temperature <= 0 && !sp.logprobs && sp.top_logprobs == 0;
}

bool GenerationJob::on_top(const int32_t* ids, int k, int32_t* next, FinishReason* reason) {
  if (n_generated_ >= params_.max_tokens) {
    *reason = FinishReason::Length;
    return false;
  }
  SampleResult s;
  for (int i = 0; i < k && s.token < 0; ++i)
    if (ids[i] >= 0 && !(params_.ignore_eos && model_.is_eog(ids[i]))) s.token = ids[i];
  if (s.token < 0) throw std::runtime_error("greedy shortcut: no allowed token among the most likely ids");
  return accept(std::move(s), next, reason);
}

bool GenerationJob::accept(SampleResult s, int32_t* next, FinishReason* reason) {
  if (model_.is_eog(s.token)) {
    *reason = FinishReason::Stop;
    return false;
  }
  auto now = Clock::now();
  if (metrics_) {
    double dt = std::chrono::duration<double>(now - (n_generated_ == 0 ? arrival_ : last_token_)).count();
    (n_generated_ == 0 ? metrics_->ttft : metrics_->per_token).observe(dt);
    metrics_->generated_tokens.fetch_add(1);
  }
  last_token_ = now;
  ++n_generated_;
  std::string piece = model_.token_to_piece(s.token);
  if (params_.sampling.logprobs || params_.sampling.top_logprobs > 0)
    new_tokens_.push_back({s.token, piece, s.logprob, std::move(s.top)});
  pending_bytes_ += piece;
  size_t k = utf8_complete_prefix(pending_bytes_);
  text_.append(pending_bytes_, 0, k);
  pending_bytes_.erase(0, k);
  if (!params_.stop.empty()) {
    size_t best = std::string::npos;
    for (const auto& st : params_.stop) {
      if (st.empty()) continue;
      size_t p = text_.find(st, sent_);
      if (p != std::string::npos) best = std::min(best, p);
    }
    if (best != std::string::npos) {
      text_.resize(best);
      pending_bytes_.clear();
      stopped_by_string_ = true;
      *reason = FinishReason::Stop;
      return false;
    }
  }
  if (n_generated_ >= params_.max_tokens) {
    *reason = FinishReason::Length;
    return false;
  }
  GenEvent ev;
  ev.text = take_text(false);
  ev.tokens = std::move(new_tokens_);
  new_tokens_.clear();
  if (!ev.text.empty() || !ev.tokens.empty()) push(std::move(ev));
  *next = s.token;
  return true;
}

std::string GenerationJob::take_text(bool flush) {
  if (flush) {
    text_ += pending_bytes_;
    pending_bytes_.clear();
  }
  size_t end = text_.size();
  if (!flush) {
    // Hold back a tail that could still grow into a stop string.
    size_t hold = 0;
    size_t avail = text_.size() - sent_;
    for (const auto& st : params_.stop) {
      size_t max_len = std::min(st.size() > 0 ? st.size() - 1 : 0, avail);
      for (size_t len = max_len; len > hold; --len)
        if (text_.compare(text_.size() - len, len, st, 0, len) == 0) {
          hold = len;
          break;
        }
    }
    end -= hold;
  }
  std::string out = text_.substr(sent_, end - sent_);
  sent_ = end;
  return out;
}

void GenerationJob::on_finish(FinishReason reason, const std::string& error) {
  GenEvent ev;
  ev.finished = true;
  ev.reason = reason;
  ev.error = error;
  if (reason == FinishReason::Stop || reason == FinishReason::Length) ev.text = take_text(true);
  ev.tokens = std::move(new_tokens_);
  new_tokens_.clear();
  if (metrics_) {
    metrics_->request_latency.observe(std::chrono::duration<double>(Clock::now() - arrival_).count());
    if (reason == FinishReason::Cancelled) metrics_->requests_cancelled.fetch_add(1);
    else if (reason == FinishReason::Error) metrics_->requests_error.fetch_add(1);
    else metrics_->requests_ok.fetch_add(1);
  }
  push(std::move(ev));
}

void GenerationJob::push(GenEvent ev) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (ev.finished) done_ = true;
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

bool GenerationJob::finished() const {
  std::lock_guard<std::mutex> lk(mu_);
  return done_;
}

std::optional<GenEvent> GenerationJob::wait(std::chrono::milliseconds timeout, bool until_finished) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return until_finished ? done_ : !events_.empty(); })) return std::nullopt;
  GenEvent out;
  while (!events_.empty()) {
    GenEvent& e = events_.front();
    out.text += e.text;
    for (auto& t : e.tokens) out.tokens.push_back(std::move(t));
    if (e.finished) {
      out.finished = true;
      out.reason = e.reason;
      out.error = e.error;
    }
    events_.pop_front();
  }
  return out;
}

}  // namespace minnow::server
