#pragma once
// GenerationJob: one request's generation, run by the Scheduler. On the scheduler thread it samples each token,
// turns tokens into UTF-8-safe text, applies stop strings and max_tokens, and records metrics; the HTTP thread
// reads the resulting events (text deltas, logprobs, finish) from a small thread-safe channel.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "server/metrics.h"
#include "server/scheduler.h"
#include "server/server_model.h"
#include "server/token_sampler.h"

namespace minnow::server {

struct GenParams {
  std::vector<int32_t> prompt;     // [n_prompt]
  int max_tokens = 16;             // >= 0 (0: finish at once with "length")
  std::vector<std::string> stop;   // stop strings (not included in the output)
  SamplingParams sampling;
  bool ignore_eos = false;         // extension (as llama-server): end-of-generation tokens are never sampled
};

struct TokenInfo {  // one generated token, for logprobs
  int32_t token;
  std::string piece;               // raw bytes
  float logprob;
  std::vector<TokenLogprob> top;   // [top_logprobs]
};

struct GenEvent {
  std::string text;                // new text (valid UTF-8 except for a final flush of broken bytes)
  std::vector<TokenInfo> tokens;   // tokens generated since the previous event
  bool finished = false;
  FinishReason reason = FinishReason::Stop;
  std::string error;
};

class GenerationJob : public Job {
 public:
  using Clock = std::chrono::steady_clock;
  GenerationJob(GenParams params, const ServerModel& model, Metrics* metrics, Clock::time_point arrival);

  const std::vector<int32_t>& prompt() const override { return params_.prompt; }
  bool on_logits(float* logits, int n_vocab, int32_t* next, FinishReason* reason) override;
  // Greedy requests without log-probabilities: the first id of the list that is allowed (an end-of-generation
  // id is not, with ignore_eos) is the argmax of the masked logits, the token on_logits would choose.
  bool greedy_only() const override;
  bool on_top(const int32_t* ids, int k, int32_t* next, FinishReason* reason) override;
  void on_finish(FinishReason reason, const std::string& error) override;

  // HTTP side: waits up to `timeout` for events and returns them merged (nullopt on timeout). With
  // until_finished, waits for the final event instead of the next one (fewer wake-ups for non-streaming).
  std::optional<GenEvent> wait(std::chrono::milliseconds timeout, bool until_finished = false);
  int n_prompt() const { return static_cast<int>(params_.prompt.size()); }
  int n_generated() const { return n_generated_; }  // valid once finished
  bool finished() const;

 private:
  // The chosen token s (by on_logits or on_top): end of generation, stop strings, length, events.
  bool accept(SampleResult s, int32_t* next, FinishReason* reason);
  void push(GenEvent ev);
  std::string take_text(bool flush);  // text that may be sent now

  GenParams params_;
  const ServerModel& model_;
  Metrics* metrics_;
  Clock::time_point arrival_, last_token_;
  TokenSampler sampler_;
  int n_generated_ = 0;
  std::string pending_bytes_;   // bytes of an incomplete UTF-8 character
  std::string text_;            // generated text so far (complete characters)
  size_t sent_ = 0;             // bytes of text_ already handed out
  bool stopped_by_string_ = false;
  std::vector<TokenInfo> new_tokens_;
  std::vector<int32_t> eog_ids_;   // ignore_eos: the vocabulary's end-of-generation tokens
  bool eog_known_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenEvent> events_;
  bool done_ = false;
};

// Length of the longest prefix of `s` made of complete UTF-8 sequences (invalid lead bytes count as complete).
size_t utf8_complete_prefix(const std::string& s);

}  // namespace minnow::server
