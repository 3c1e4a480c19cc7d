#pragma once
// A multi-turn conversation on one backend sequence slot. Each turn re-renders the whole conversation with
// the chat template, keeps the longest prefix of tokens already in the KV cache, and processes only the rest
// (normally just the new turn). Context policy: when the prompt plus a reply reserve no longer fits, the oldest
// turns (a user message and the replies after it) are dropped, the system prompt is always kept.
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "sample/sampler.h"

namespace minnow {

class Backend;
class Tokenizer;

struct ChatTurnStats {
  size_t prompt_tokens = 0;   // tokens of the whole rendered conversation
  size_t prompt_reused = 0;   // of those, already in the KV cache
  size_t prompt_new = 0;      // processed this turn
  size_t generated = 0;
  double prompt_ms = 0, gen_ms = 0;
  int dropped_turns = 0;      // oldest turns dropped to fit the context this turn
  std::string stop;           // "eog", "length", "context", "interrupted"
};

class ChatSession {
 public:
  ChatSession(const Tokenizer& tok, Backend& backend, ChatTemplate tmpl, const SamplerParams& sp, int n_ctx,
              const std::string& system_prompt, int n_predict = -1, int seq = 0);

  // One user turn: streams the reply through on_piece, returns the reply text. `stop` (may be null) is polled
  // between tokens; when it becomes true the reply ends there (and is kept in the conversation).
  // Throws Error when even the system prompt plus this message cannot fit the context (the message is then
  // not kept).
  std::string turn(const std::string& user, const std::function<void(const std::string&)>& on_piece,
                   const std::atomic<bool>* stop, ChatTurnStats* stats);

  const nlohmann::ordered_json& messages() const { return messages_; }
  size_t cached_tokens() const { return cache_.size(); }
  int reply_reserve() const { return reserve_; }

 private:
  void feed(const std::vector<int32_t>& toks, size_t from, std::vector<float>& logits);
  const Tokenizer& tok_;
  Backend& backend_;
  ChatTemplate tmpl_;
  Sampler sampler_;
  int n_ctx_;
  int n_predict_;
  int seq_;
  int reserve_;
  nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
  std::vector<int32_t> cache_;  // tokens whose KV entries sit at positions 0..size-1 of slot seq_
};

}  // namespace minnow
