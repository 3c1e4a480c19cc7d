#pragma once
// Plain double-precision references of the ops in ops.h, written from the formulas (for tests).
#include <cstdint>
#include <vector>

#include "backend/cpu/ops.h"

namespace minnow::ref {

std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& w, double eps);
// x[n_heads * head_dim] at position pos
std::vector<double> rope(const std::vector<double>& x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                         double freq_base, double freq_scale, RopeMode mode);
// With per-pair frequency factors (theta_i / factors[i]); empty factors: none.
std::vector<double> rope(const std::vector<double>& x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                         double freq_base, double freq_scale, RopeMode mode, const std::vector<double>& factors,
                         double mscale = 1.0);
// RMSNorm of each of n_heads heads of x[n_heads * head_dim] with the shared weight w[head_dim] (Q/K norm).
std::vector<double> rmsnorm_heads(const std::vector<double>& x, const std::vector<double>& w, int64_t n_heads,
                                  double eps);
std::vector<double> geglu_tanh(const std::vector<double>& gate, const std::vector<double>& up);
std::vector<double> softcap(const std::vector<double>& x, double cap);
std::vector<double> softmax(const std::vector<double>& x);
std::vector<double> swiglu(const std::vector<double>& gate, const std::vector<double>& up);
// Causal multi-head attention with grouped KV heads over one sequence of n tokens:
// q[n][n_head*hd], k/v[n][n_head_kv*hd] -> out[n][n_head*hd]; query head h reads KV head h / (n_head/n_head_kv).
std::vector<double> attention(const std::vector<double>& q, const std::vector<double>& k,
                              const std::vector<double>& v, int64_t n, int64_t n_head, int64_t n_head_kv,
                              int64_t hd);
// As above with a softmax scale and a sliding window: token t sees positions j with t - j < window
// (window 0: all j <= t).
std::vector<double> attention(const std::vector<double>& q, const std::vector<double>& k,
                              const std::vector<double>& v, int64_t n, int64_t n_head, int64_t n_head_kv,
                              int64_t hd, double scale, int64_t window);

}  // namespace minnow::ref
