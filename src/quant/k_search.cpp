// Scale searches for the K-quant encoders (see k_search.h). The inner loops work on 8 lanes of partial sums
// so that the compiler can vectorize them; sub-block lengths are multiples of 8.
#include "quant/k_search.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/quant_impl.h"

namespace minnow::qimpl {

namespace {
constexpr int kMaxN = 32;       // longest sub-block searched
constexpr int kLanes = 8;
constexpr float kTiny = 1e-15f;  // below this a block is treated as all zeros
constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23

// Round to nearest even for |v| < 2^22 (callers clamp first), branch-free.
inline float round_even(float v) { return (v + kRoundMagic) - kRoundMagic; }

float lane_sum(const float a[kLanes]) {
  float s = 0;
  for (int k = 0; k < kLanes; ++k) s += a[k];
  return s;
}

// A float level known to be a small integer (or nan for nan input) -> uint8 with offset.
uint8_t to_level(float l, int offset, int hi) {
  if (!(l == l)) return static_cast<uint8_t>(offset);
  return static_cast<uint8_t>(clampi(static_cast<int>(l) + offset, 0, hi));
}

}  // namespace

int nearest_int(float v) {
  if (!(std::fabs(v) < 4194303.0f)) return 0;  // nan / absurd values: callers clamp anyway
  return static_cast<int>(round_even(v));
}

float search_symmetric(int n, int nmax, const float* x, uint8_t* L) {
  const float vmax = signed_absmax(x, n);
  if (std::fabs(vmax) < kTiny) {
    std::fill(L, L + n, static_cast<uint8_t>(nmax));
    return 0.0f;
  }
  const float lo = -static_cast<float>(nmax), hi = static_cast<float>(nmax - 1);
  // Weighted fit of x by scale * l with weights x^2: best scale = sum(w x l) / sum(w l^2);
  // quality (what the fit removes from sum(w x^2)) = sum(w x l)^2 / sum(w l^2).
  float lv[kMaxN];
  auto fit = [&](float iscale, float* scale, float* quality) {
    float axl[kLanes] = {}, all[kLanes] = {};
    for (int i = 0; i < n; i += kLanes)
      for (int k = 0; k < kLanes; ++k) {
        const float xi = x[i + k];
        const float l = round_even(std::min(hi, std::max(lo, iscale * xi)));
        lv[i + k] = l;
        const float wl = xi * xi * l;
        axl[k] += wl * xi;
        all[k] += wl * l;
      }
    const float sxl = lane_sum(axl), sll = lane_sum(all);
    *scale = sll > 0 ? sxl / sll : 0.0f;
    *quality = *scale * sxl;
  };
  float best_scale, best_q;
  float best_iscale = -static_cast<float>(nmax) / vmax;
  fit(best_iscale, &best_scale, &best_q);
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(k)) / vmax;
    float scale, q;
    fit(iscale, &scale, &q);
    if (q > best_q) {
      best_q = q;
      best_scale = scale;
      best_iscale = iscale;
    }
  }
  fit(best_iscale, &best_scale, &best_q);  // recompute the winner's levels
  for (int i = 0; i < n; ++i) L[i] = to_level(lv[i], nmax, 2 * nmax - 1);
  return best_scale;
}

float search_symmetric_greedy(int n, int nmax, const float* x, uint8_t* L) {
  const float vmax = signed_absmax(x, n);
  if (std::fabs(vmax) < kTiny) {
    std::fill(L, L + n, static_cast<uint8_t>(nmax));
    return 0.0f;
  }
  const float iscale = -static_cast<float>(nmax) / vmax;
  int l[kMaxN];
  float sxl = 0, sll = 0;
  for (int i = 0; i < n; ++i) {
    l[i] = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    const float w = x[i] * x[i];
    sxl += w * x[i] * static_cast<float>(l[i]);
    sll += w * static_cast<float>(l[i] * l[i]);
  }
  // Move one level at a time to the value that is best given the others; accept when the fit improves.
  for (int round = 0; round < 5; ++round) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const float sxl_wo = sxl - w * x[i] * static_cast<float>(l[i]);
      if (sxl_wo <= 0) continue;
      const float sll_wo = sll - w * static_cast<float>(l[i] * l[i]);
      const int cand = clampi(nearest_int(x[i] * sll_wo / sxl_wo), -nmax, nmax - 1);
      if (cand == l[i]) continue;
      const float sxl_new = sxl_wo + w * x[i] * static_cast<float>(cand);
      const float sll_new = sll_wo + w * static_cast<float>(cand * cand);
      if (sll_new > 0 && sxl_new * sxl_new * sll > sxl * sxl * sll_new) {
        l[i] = cand;
        sxl = sxl_new;
        sll = sll_new;
        ++changed;
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(l[i] + nmax);
  return sll > 0 ? sxl / sll : 0.0f;
}

float search_offset(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out, float rmin,
                    float rdelta, int nstep, bool use_abs) {
  float lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
  if (lo > 0) lo = 0;  // the offset only ever subtracts
  if (!(hi > lo)) {
    std::fill(L, L + n, static_cast<uint8_t>(0));
    *min_out = lo == lo ? -lo : 0.0f;
    return 0.0f;
  }
  float aw[kLanes] = {}, awx[kLanes] = {}, awxx[kLanes] = {};
  for (int i = 0; i < n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      aw[k] += w[i + k];
      awx[k] += w[i + k] * x[i + k];
      awxx[k] += w[i + k] * x[i + k] * x[i + k];
    }
  const float sum_w = lane_sum(aw), sum_x = lane_sum(awx), sum_xx = lane_sum(awxx);
  const float top = static_cast<float>(nmax);

  float lv[kMaxN], best_lv[kMaxN];
  float sum_l, sum_l2, sum_xl;
  // Levels for an inverse scale, with their weighted sums.
  auto levels = [&](float iscale) {
    float al[kLanes] = {}, al2[kLanes] = {}, axl[kLanes] = {};
    for (int i = 0; i < n; i += kLanes)
      for (int k = 0; k < kLanes; ++k) {
        const float l = round_even(std::min(top, std::max(0.0f, iscale * (x[i + k] - lo))));
        lv[i + k] = l;
        const float wl = w[i + k] * l;
        al[k] += wl;
        al2[k] += wl * l;
        axl[k] += wl * x[i + k];
      }
    sum_l = lane_sum(al);
    sum_l2 = lane_sum(al2);
    sum_xl = lane_sum(axl);
  };
  // Weighted error of x ~ scale * l - (-min) over the current levels.
  auto error_of = [&](float scale, float min) {
    if (!use_abs) {
      // sum w (s l + m - x)^2 expanded over the sums (no second pass over the data).
      const float e = scale * scale * sum_l2 + min * min * sum_w + sum_xx + 2 * scale * min * sum_l -
                      2 * scale * sum_xl - 2 * min * sum_x;
      return std::max(e, 0.0f);
    }
    float ae[kLanes] = {};
    for (int i = 0; i < n; i += kLanes)
      for (int k = 0; k < kLanes; ++k) ae[k] += w[i + k] * std::fabs(scale * lv[i + k] + min - x[i + k]);
    return lane_sum(ae);
  };

  // Starting point: plain min/max mapping.
  levels(top / (hi - lo));
  float best_scale = (hi - lo) / top, best_min = lo;
  float best_err = error_of(best_scale, best_min);
  std::copy(lv, lv + n, best_lv);
  for (int k = 0; k <= nstep; ++k) {
    levels((rmin + rdelta * static_cast<float>(k) + top) / (hi - lo));
    // Weighted least squares for x ~ scale * l + min.
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (min > 0) {  // an offset must not add: refit the scale alone with min = 0
      min = 0;
      scale = sum_l2 > 0 ? sum_xl / sum_l2 : 0.0f;
    }
    const float err = error_of(scale, min);
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      best_min = min;
      std::copy(lv, lv + n, best_lv);
    }
  }
  for (int i = 0; i < n; ++i) L[i] = to_level(best_lv[i], 0, nmax);
  *min_out = -best_min;
  return best_scale;
}

}  // namespace minnow::qimpl
