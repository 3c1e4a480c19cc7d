#include "backend/cpu/ops_ref.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace minnow::ref {

std::vector<double> rmsnorm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  ms /= static_cast<double>(x.size());
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * w[i];
  return y;
}

std::vector<double> rope(const std::vector<double>& x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                         double freq_base, double freq_scale, RopeMode mode) {
  return rope(x, n_heads, head_dim, n_rot, pos, freq_base, freq_scale, mode, {});
}

std::vector<double> rope(const std::vector<double>& x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
                         double freq_base, double freq_scale, RopeMode mode, const std::vector<double>& factors,
                         double mscale) {
  std::vector<double> y = x;
  for (int64_t h = 0; h < n_heads; ++h) {
    for (int64_t i = 0; i < n_rot / 2; ++i) {
      const double theta = static_cast<double>(pos) * freq_scale *
                           std::pow(freq_base, -2.0 * static_cast<double>(i) / static_cast<double>(n_rot)) /
                           (factors.empty() ? 1.0 : factors[static_cast<size_t>(i)]);
      int64_t a, b;
      if (mode == RopeMode::Normal) {
        a = h * head_dim + 2 * i;
        b = a + 1;
      } else {
        a = h * head_dim + i;
        b = a + n_rot / 2;
      }
      const double c = std::cos(theta) * mscale, s = std::sin(theta) * mscale;
      y[a] = x[a] * c - x[b] * s;
      y[b] = x[a] * s + x[b] * c;
    }
  }
  return y;
}

std::vector<double> softmax(const std::vector<double>& x) {
  const double mx = *std::max_element(x.begin(), x.end());
  std::vector<double> y(x.size());
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (y[i] = std::exp(x[i] - mx));
  for (double& v : y) v /= s;
  return y;
}

std::vector<double> swiglu(const std::vector<double>& gate, const std::vector<double>& up) {
  std::vector<double> y(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) y[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
  return y;
}

std::vector<double> rmsnorm_heads(const std::vector<double>& x, const std::vector<double>& w, int64_t n_heads,
                                  double eps) {
  const size_t hd = w.size();
  std::vector<double> y;
  for (int64_t h = 0; h < n_heads; ++h) {
    const std::vector<double> head(x.begin() + static_cast<std::ptrdiff_t>(h * hd),
                                   x.begin() + static_cast<std::ptrdiff_t>((h + 1) * hd));
    const std::vector<double> r = rmsnorm(head, w, eps);
    y.insert(y.end(), r.begin(), r.end());
  }
  return y;
}

std::vector<double> geglu_tanh(const std::vector<double>& gate, const std::vector<double>& up) {
  const double pi = 3.14159265358979323846;
  std::vector<double> y(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) {
    const double g = gate[i];
    y[i] = 0.5 * g * (1.0 + std::tanh(std::sqrt(2.0 / pi) * (g + 0.044715 * g * g * g))) * up[i];
  }
  return y;
}

std::vector<double> softcap(const std::vector<double>& x, double cap) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = cap * std::tanh(x[i] / cap);
  return y;
}

std::vector<double> attention(const std::vector<double>& q, const std::vector<double>& k,
                              const std::vector<double>& v, int64_t n, int64_t n_head, int64_t n_head_kv,
                              int64_t hd) {
  return attention(q, k, v, n, n_head, n_head_kv, hd, 1.0 / std::sqrt(static_cast<double>(hd)), 0);
}

std::vector<double> attention(const std::vector<double>& q, const std::vector<double>& k,
                              const std::vector<double>& v, int64_t n, int64_t n_head, int64_t n_head_kv,
                              int64_t hd, double scale, int64_t window) {
  const int64_t group = n_head / n_head_kv;
  std::vector<double> out(static_cast<size_t>(n * n_head * hd), 0.0);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t kvh = h / group;
      const int64_t j0 = window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;
      std::vector<double> s;
      for (int64_t j = j0; j <= t; ++j) {
        double d = 0;
        for (int64_t e = 0; e < hd; ++e) d += q[(t * n_head + h) * hd + e] * k[(j * n_head_kv + kvh) * hd + e];
        s.push_back(d * scale);
      }
      const std::vector<double> p = softmax(s);
      for (int64_t j = j0; j <= t; ++j)
        for (int64_t e = 0; e < hd; ++e)
          out[(t * n_head + h) * hd + e] += p[static_cast<size_t>(j - j0)] * v[(j * n_head_kv + kvh) * hd + e];
    }
  }
  return out;
}

}  // namespace minnow::ref
