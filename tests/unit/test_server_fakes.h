#pragma once
// Deterministic stand-ins for the model pipeline, for scheduler and HTTP tests without a real model.
//
// FakeBackend: logits of a sequence depend only on that sequence's own history, hashed together with the
// position at which each batch's run of that sequence started. So the outputs are batch-invariant across
// sequences (like the real backends promise) but DO change if a scheduler cuts a prompt differently - which
// lets tests see load-dependent chunking. It also checks every batch for position/slot consistency.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "server/server_model.h"

namespace minnow::testing_fakes {

inline uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h *= 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 31);
}

constexpr int kVocab = 260;  // 0..255 bytes, 256 BOS, 257 EOS, 258 <|im_start|>, 259 <|im_end|>
constexpr int kBos = 256, kEos = 257, kImStart = 258, kImEnd = 259;

class FakeBackend : public Backend {
 public:
  explicit FakeBackend(int n_slots, int n_ctx) : hist_(n_slots, 0), n_past_(n_slots, 0), n_ctx_(n_ctx) {}
  std::string name() const override { return "fake"; }
  size_t kv_cache_bytes() const override { return 0; }
  size_t weight_bytes() const override { return 0; }
  // Like the CUDA backend: passes of more than invariant_limit tokens (when > 0) compute differently (the
  // pass size is mixed into every history), so a sequence's tokens depend on whether its work shared a large pass.
  int invariant_batch() const override { return invariant_limit.load(); }
  void seq_clear(int seq) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (seq < 0 || seq >= static_cast<int>(hist_.size())) {
      violations_.push_back("seq_clear of bad slot " + std::to_string(seq));
      return;
    }
    hist_[seq] = 0;
    n_past_[seq] = 0;
    ++clears_;
  }
  void forward(const Batch& b, std::vector<float>& logits) override {
    entered.fetch_add(1);
    if (delay_ms.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms.load()));
    while (hold.load()) std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (fail_next.exchange(false)) throw std::runtime_error("injected failure");
    std::lock_guard<std::mutex> lk(mu_);
    ++n_forward_;
    std::map<int, int> run_start;  // seq -> position of its first token in this batch
    std::vector<int> last_seq_in_batch;
    int distinct = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      int s = b.seq[i];
      if (s < 0 || s >= static_cast<int>(hist_.size())) {
        violations_.push_back("bad seq " + std::to_string(s));
        continue;
      }
      if (b.tokens[i] < 0 || b.tokens[i] >= kVocab) violations_.push_back("bad token");
      if (b.pos[i] != n_past_[s])
        violations_.push_back("seq " + std::to_string(s) + " pos " + std::to_string(b.pos[i]) + " expected " +
                              std::to_string(n_past_[s]));
      if (b.pos[i] >= n_ctx_) violations_.push_back("position beyond context");
      if (!run_start.count(s)) {
        run_start[s] = b.pos[i];
        ++distinct;
      }
      hist_[s] = mix(mix(mix(hist_[s], static_cast<uint64_t>(b.tokens[i])), static_cast<uint64_t>(b.pos[i])),
                     static_cast<uint64_t>(run_start[s]));
      const int lim = invariant_limit.load();
      if (lim > 0 && static_cast<int>(b.size()) > lim) hist_[s] = mix(hist_[s], 0xB16ull);
      n_past_[s] = b.pos[i] + 1;
      if (b.want_logits[i]) {
        size_t off = logits.size();
        logits.resize(off + kVocab);
        uint64_t h = hist_[s];
        for (int v = 0; v < kVocab; ++v) {
          h = mix(h, static_cast<uint64_t>(v));
          // Prefer lowercase letters and space so the text is readable; EOS only when asked.
          bool nice = (v >= 'a' && v <= 'z') || v == ' ';
          float x = static_cast<float>(static_cast<double>(h >> 11) / 9007199254740992.0);
          logits[off + v] = nice ? x * 4.0f : x - 6.0f;
        }
        if (eos_at_pos >= 0 && b.pos[i] + 1 >= eos_at_pos) logits[off + kEos] = 100.0f;
      }
    }
    max_distinct_ = std::max(max_distinct_, distinct);
    batch_sizes_.push_back(static_cast<int>(b.size()));
  }
  std::vector<std::string> violations() {
    std::lock_guard<std::mutex> lk(mu_);
    return violations_;
  }
  int max_distinct_seqs() {
    std::lock_guard<std::mutex> lk(mu_);
    return max_distinct_;
  }
  int clears() {
    std::lock_guard<std::mutex> lk(mu_);
    return clears_;
  }
  std::atomic<int> delay_ms{0};
  std::atomic<bool> fail_next{false};
  std::atomic<int> eos_at_pos{-1};
  std::atomic<bool> hold{false};  // forward() waits while set (lets a test queue work before anything runs)
  std::atomic<int> entered{0};    // forward() calls begun (a test can wait until the scheduler is inside one)
  std::atomic<int> invariant_limit{0};

 private:
  std::mutex mu_;
  std::vector<uint64_t> hist_;  // [n_slots]
  std::vector<int> n_past_;     // [n_slots]
  int n_ctx_;
  int n_forward_ = 0, max_distinct_ = 0, clears_ = 0;
  std::vector<int> batch_sizes_;
  std::vector<std::string> violations_;
};

// Greedy reference: one sequence alone, prompt cut at multiples of `chunk`, then one token per step.
inline std::vector<int32_t> reference_greedy(const std::vector<int32_t>& prompt, int max_tokens, int chunk,
                                             int n_ctx, int eos_at_pos = -1, int invariant_limit = 0) {
  FakeBackend be(1, n_ctx);
  be.eos_at_pos = eos_at_pos;
  be.invariant_limit = invariant_limit;
  std::vector<float> logits;
  int n = static_cast<int>(prompt.size());
  for (int start = 0; start < n; start += chunk) {
    Batch b;
    int end = std::min(n, start + chunk);
    for (int k = start; k < end; ++k) b.add(prompt[k], k, 0, k == n - 1);
    logits.clear();
    be.forward(b, logits);
  }
  std::vector<int32_t> out;
  int pos = n;
  while (static_cast<int>(out.size()) < max_tokens) {
    int32_t best = 0;
    for (int v = 1; v < kVocab; ++v)
      if (logits[v] > logits[best]) best = v;
    if (best == kEos) break;
    out.push_back(best);
    if (static_cast<int>(out.size()) >= max_tokens || pos >= n_ctx) break;
    Batch b;
    b.add(best, pos++, 0, true);
    logits.clear();
    be.forward(b, logits);
  }
  return out;
}

class FakeModel : public server::ServerModel {
 public:
  std::string id() const override { return "fake-model"; }
  int n_vocab() const override { return kVocab; }
  std::vector<int32_t> tokenize(const std::string& text, bool add_special, bool parse_special) const override {
    tokenize_calls.fetch_add(1);
    std::vector<int32_t> out;
    if (add_special) out.push_back(kBos);
    for (size_t i = 0; i < text.size();) {
      if (parse_special && text.compare(i, 12, "<|im_start|>") == 0) {
        out.push_back(kImStart);
        i += 12;
      } else if (parse_special && text.compare(i, 10, "<|im_end|>") == 0) {
        out.push_back(kImEnd);
        i += 10;
      } else {
        out.push_back(static_cast<unsigned char>(text[i++]));
      }
    }
    return out;
  }
  std::string token_to_piece(int32_t t) const override {
    if (t < 256) return std::string(1, static_cast<char>(t));
    if (t == kImStart) return "<|im_start|>";
    if (t == kImEnd) return "<|im_end|>";
    return "";
  }
  bool is_eog(int32_t t) const override { return t == kEos || t == kImEnd; }
  // The longest token text is "<|im_start|>".
  size_t max_token_bytes() const override { return 12; }
  // What chat_prompt() renders, counted without tokenizing.
  size_t chat_prompt_bytes(const nlohmann::json& messages) const override {
    size_t n = 12 + 10;  // "<|im_start|>assistant\n"
    for (const auto& m : messages)
      n += 12 + m["role"].get_ref<const std::string&>().size() + 1 + m["content"].get_ref<const std::string&>().size() + 10 + 1;
    return n;
  }
  mutable std::atomic<int> tokenize_calls{0};  // calls of tokenize(), also from chat_prompt()
  std::vector<int32_t> chat_prompt(const nlohmann::json& messages) const override {
    std::vector<int32_t> out;
    for (const auto& m : messages) {
      out.push_back(kImStart);
      for (int32_t t : tokenize(m["role"].get<std::string>() + "\n" + m["content"].get<std::string>(), false, false))
        out.push_back(t);
      out.push_back(kImEnd);
      out.push_back('\n');
    }
    out.push_back(kImStart);
    for (char c : std::string("assistant\n")) out.push_back(static_cast<unsigned char>(c));
    return out;
  }
};

inline std::string detok(const std::vector<int32_t>& toks) {
  FakeModel m;
  std::string s;
  for (int32_t t : toks) s += m.token_to_piece(t);
  return s;
}

}  // namespace minnow::testing_fakes
