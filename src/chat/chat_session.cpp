#include "chat/chat_session.h"

#include <algorithm>
#include <chrono>

#include "backend/backend.h"
#include "chat/chat_prompt.h"
#include "common/error.h"
#include "tokenizer/tokenizer.h"

namespace minnow {

static double ms_now() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

ChatSession::ChatSession(const Tokenizer& tok, Backend& backend, ChatTemplate tmpl, const SamplerParams& sp, int n_ctx,
                         const std::string& system_prompt, int n_predict, int seq)
    : tok_(tok), backend_(backend), tmpl_(std::move(tmpl)), sampler_(sp, tok.n_vocab()), n_ctx_(n_ctx),
      n_predict_(n_predict), seq_(seq) {
  if (n_ctx_ < 8) throw Error("chat needs a context of at least 8 tokens");
  // Room kept free for the reply when deciding whether the conversation still fits.
  reserve_ = n_predict_ > 0 ? std::min(n_predict_, n_ctx_ / 2) : std::min(512, n_ctx_ / 4);
  if (!system_prompt.empty()) messages_.push_back({{"role", "system"}, {"content", system_prompt}});
  backend_.seq_clear(seq_);
}

void ChatSession::feed(const std::vector<int32_t>& toks, size_t from, std::vector<float>& logits) {
  const size_t n_batch = 512;
  for (size_t start = from; start < toks.size(); start += n_batch) {
    const size_t end = std::min(toks.size(), start + n_batch);
    Batch b;
    for (size_t i = start; i < end; ++i) b.add(toks[i], static_cast<int32_t>(i), seq_, i + 1 == toks.size());
    logits.clear();
    backend_.forward(b, logits);
  }
}

std::string ChatSession::turn(const std::string& user, const std::function<void(const std::string&)>& on_piece,
                              const std::atomic<bool>* stop, ChatTurnStats* stats) {
  ChatTurnStats st;
  messages_.push_back({{"role", "user"}, {"content", user}});
  ChatPrompt prompt;
  while (true) {
    try {
      prompt = build_chat_prompt(tok_, tmpl_, messages_, true);
    } catch (...) {
      messages_.erase(messages_.end() - 1);
      throw;
    }
    if (static_cast<int>(prompt.tokens.size()) + reserve_ <= n_ctx_) break;
    // Drop the oldest turn: the first non-system message and everything up to the next user message.
    size_t first = 0;
    while (first < messages_.size() && messages_[first].value("role", "") == "system") ++first;
    size_t last_user = messages_.size() - 1;
    if (first >= last_user) {
      if (static_cast<int>(prompt.tokens.size()) < n_ctx_) break;  // no reply reserve, but it fits
      messages_.erase(messages_.end() - 1);
      throw Error("message too long: the conversation needs " + std::to_string(prompt.tokens.size()) +
                  " tokens, the context holds " + std::to_string(n_ctx_) + " (use -c)");
    }
    size_t next = first + 1;
    while (next < last_user && messages_[next].value("role", "") != "user") ++next;
    messages_.erase(messages_.begin() + static_cast<std::ptrdiff_t>(first),
                    messages_.begin() + static_cast<std::ptrdiff_t>(next));
    ++st.dropped_turns;
  }
  const std::vector<int32_t>& toks = prompt.tokens;
  if (toks.empty()) throw Error("the chat prompt is empty");

  // Reuse the KV cache for the longest common prefix; at least the last token is processed (for its logits).
  size_t p = 0;
  while (p < cache_.size() && p < toks.size() && cache_[p] == toks[p]) ++p;
  if (p == toks.size()) --p;
  if (static_cast<int32_t>(p) < backend_.seq_min_restart(seq_)) p = 0;  // a sliding-window cache dropped it
  std::vector<float> logits;
  const double t0 = ms_now();
  feed(toks, p, logits);
  st.prompt_ms = ms_now() - t0;
  cache_ = toks;
  st.prompt_tokens = toks.size();
  st.prompt_reused = p;
  st.prompt_new = toks.size() - p;

  sampler_.reset();
  for (int32_t t : toks) sampler_.accept(t);
  std::string reply;
  StreamDecoder dec(tok_);
  st.stop = "length";
  const double t1 = ms_now();
  for (;;) {
    if (stop && stop->load()) {
      st.stop = "interrupted";
      break;
    }
    if (n_predict_ >= 0 && static_cast<int>(st.generated) >= n_predict_) break;
    const int32_t id = sampler_.sample(logits.data());
    sampler_.accept(id);
    if (tok_.is_eog(id)) {
      st.stop = "eog";
      break;
    }
    ++st.generated;
    std::string piece = dec.push(id);
    if (!piece.empty()) {
      reply += piece;
      if (on_piece) on_piece(piece);
    }
    if (static_cast<int>(cache_.size()) >= n_ctx_) {
      st.stop = "context";
      break;
    }
    Batch b;
    b.add(id, static_cast<int32_t>(cache_.size()), seq_, true);
    logits.clear();
    backend_.forward(b, logits);
    cache_.push_back(id);
  }
  std::string tail = dec.flush();
  if (!tail.empty()) {
    reply += tail;
    if (on_piece) on_piece(tail);
  }
  st.gen_ms = ms_now() - t1;
  messages_.push_back({{"role", "assistant"}, {"content", reply}});
  if (stats) *stats = st;
  return reply;
}

}  // namespace minnow
