// Scale searches for the K-quant encoders (see k_search.h).
#include "quant/k_search.h"

#include <algorithm>
#include <cmath>

namespace minnow::qimpl {

namespace {
constexpr int kMaxN = 32;    // longest sub-block searched
constexpr float kTiny = 1e-15f;  // below this a block is treated as all zeros
int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }
}  // namespace

int nearest_int(float v) {
  if (!(std::fabs(v) < 4194303.0f)) return 0;  // nan / absurd values: callers clamp anyway
  return static_cast<int>(std::nearbyint(v));
}

float search_symmetric(int n, int nmax, const float* x, uint8_t* L) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      vmax = x[i];
    }
  }
  if (amax < kTiny) {
    std::fill(L, L + n, static_cast<uint8_t>(nmax));
    return 0.0f;
  }
  // Weighted fit of x by scale * l: best scale = sum(w x l) / sum(w l^2); quality = sum(w x l)^2 / sum(w l^2).
  auto fit = [&](float iscale, uint8_t* out, float* scale, float* quality) {
    float sxl = 0, sll = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      if (out) out[i] = static_cast<uint8_t>(l + nmax);
      const float w = x[i] * x[i];
      sxl += w * x[i] * static_cast<float>(l);
      sll += w * static_cast<float>(l * l);
    }
    *scale = sll > 0 ? sxl / sll : 0.0f;
    *quality = *scale * sxl;
  };
  float best_scale, best_q;
  fit(-static_cast<float>(nmax) / vmax, L, &best_scale, &best_q);
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(k)) / vmax;
    float scale, q;
    fit(iscale, nullptr, &scale, &q);
    if (q > best_q) {
      fit(iscale, L, &best_scale, &best_q);
    }
  }
  return best_scale;
}

float search_symmetric_greedy(int n, int nmax, const float* x, uint8_t* L) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      vmax = x[i];
    }
  }
  if (amax < kTiny) {
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
  if (hi <= lo) {
    std::fill(L, L + n, static_cast<uint8_t>(0));
    *min_out = -lo;
    return 0.0f;
  }
  float sum_w = 0, sum_x = 0;
  for (int i = 0; i < n; ++i) {
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  auto error_of = [&](float scale, float min, const uint8_t* lv) {
    float e = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = scale * static_cast<float>(lv[i]) + min - x[i];
      e += w[i] * (use_abs ? std::fabs(diff) : diff * diff);
    }
    return e;
  };
  // Starting point: plain min/max mapping.
  float iscale = static_cast<float>(nmax) / (hi - lo);
  float best_scale = 1.0f / iscale, best_min = lo;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(clampi(nearest_int(iscale * (x[i] - lo)), 0, nmax));
  float best_err = error_of(best_scale, best_min, L);
  uint8_t cand[kMaxN];
  for (int k = 0; k <= nstep; ++k) {
    iscale = (rmin + rdelta * static_cast<float>(k) + static_cast<float>(nmax)) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clampi(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      cand[i] = static_cast<uint8_t>(l);
      sum_l += w[i] * static_cast<float>(l);
      sum_l2 += w[i] * static_cast<float>(l * l);
      sum_xl += w[i] * static_cast<float>(l) * x[i];
    }
    // Weighted least squares for x ~ scale * l + min.
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (det <= 0) continue;
    float scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (min > 0) {  // an offset must not add: refit the scale alone with min = 0
      min = 0;
      scale = sum_l2 > 0 ? sum_xl / sum_l2 : 0.0f;
    }
    const float err = error_of(scale, min, cand);
    if (err < best_err) {
      best_err = err;
      best_scale = scale;
      best_min = min;
      std::copy(cand, cand + n, L);
    }
  }
  *min_out = -best_min;
  return best_scale;
}

}  // namespace minnow::qimpl
