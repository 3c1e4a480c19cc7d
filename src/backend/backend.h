#pragma once
// The backend interface: a backend owns the weights it computes with (mapped or uploaded) and a KV cache of
// n_seq_max independent sequence slots, and runs the model on a batch of tokens. CPU and CUDA implement it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace minnow {

class Model;  // src/model/model.h: hyperparameters + weight tensors (views into the GGUF mapping)

struct BackendOptions {
  int n_ctx = 4096;      // KV-cache positions per sequence slot
  int n_seq_max = 1;     // number of independent sequence slots (server: --parallel)
  int n_threads = 0;     // CPU threads; 0 = all cores
  std::string dump_dir;  // if set (CPU), every named intermediate activation is written here as .npy
};

// One forward pass over n tokens, possibly from several sequences (continuous batching).
struct Batch {
  std::vector<int32_t> tokens;       // [n]
  std::vector<int32_t> pos;          // [n] position of each token within its sequence
  std::vector<int32_t> seq;          // [n] sequence slot, 0 <= seq < n_seq_max
  std::vector<uint8_t> want_logits;  // [n] 1 = return this token's logits
  size_t size() const { return tokens.size(); }
  void add(int32_t token, int32_t p, int32_t s, bool logits) {
    tokens.push_back(token);
    pos.push_back(p);
    seq.push_back(s);
    want_logits.push_back(logits ? 1 : 0);
  }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "cuda"
  // Appends to `logits` one row of n_vocab floats per token with want_logits set, in batch order.
  // Tokens of one sequence must come in increasing position order; a token at position p attends to
  // that sequence's cache positions [0, p]. Results for a sequence never depend on the other sequences
  // in the batch (batch invariance).
  virtual void forward(const Batch& batch, std::vector<float>& logits) = 0;
  virtual void seq_clear(int seq) = 0;  // forget a slot's cache (positions restart at 0)
  // A batch may restart slot `seq` at position 0 or at any position from this one up to the slot's length
  // (re-using a shorter prefix of its cache). 0 (the default) for a cache that keeps every position; a
  // sliding-window cache that dropped old positions returns more, and an earlier restart is an Error.
  virtual int32_t seq_min_restart(int seq) const {
    (void)seq;
    return 0;
  }
  virtual size_t kv_cache_bytes() const = 0;
  virtual size_t weight_bytes() const = 0;  // bytes of weights this backend reads per token
  // Forward passes of at most this many tokens compute every token bitwise as it would be computed in any other
  // such pass (same kernels whatever the batch); 0: passes of any size do. Larger passes may use other kernels
  // (the CUDA backend: GEMMs above 32 tokens), whose results differ in the last bits.
  virtual int invariant_batch() const { return 0; }

  // Greedy shortcut (the server's temperature-0 requests): like forward, but for a wanted row whose flag in
  // `top_only` is set ([one per wanted row], in batch order) only its kTopIds most likely token ids come back, in
  // `top` (highest logit first, the lower id first on ties; NaN never listed, -1 past the last listed id), and
  // no logits row; the other wanted rows append their logits rows to `logits` as forward does. `top` gets
  // kTopIds entries for every wanted row. A backend on a device overrides it to skip copying most logits to the
  // host; this default runs forward and lists on the host.
  static constexpr int kTopIds = 8;
  virtual bool prefers_top() const { return false; }  // forward_top saves work here (the scheduler's auto mode)
  virtual void forward_top(const Batch& batch, const std::vector<uint8_t>& top_only, std::vector<float>& logits,
                           std::vector<int32_t>& top);
};

// The kTopIds most likely ids of one logits row (the order forward_top promises): out[kTopIds].
void top_ids(const float* row, int64_t n_vocab, int32_t* out);
// forward_top's argument check: one flag per wanted row (throws Error otherwise).
void check_top_flags(const Batch& batch, const std::vector<uint8_t>& top_only);

std::unique_ptr<Backend> make_cpu_backend(const Model& model, const BackendOptions& opt);

}  // namespace minnow
