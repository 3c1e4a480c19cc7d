#pragma once
// Scale (and min) searches used by the K-quant encoders. Same ideas as ggml's reference quantizers:
// try a small grid of candidate inverse scales, quantize, refit the scale (and min) by weighted least
// squares, keep the candidate with the smallest weighted error. n (a sub-block length) is at most 32.
#include <cstdint>

namespace minnow::qimpl {

// Round to nearest, ties to even (what ggml's nearest_int does).
int nearest_int(float v);

// Symmetric levels L[i] in [0, 2*nmax) meaning (L[i] - nmax) * scale; weights x^2. Returns scale
// (may be negative). x[n], L[n].
float search_symmetric(int n, int nmax, const float* x, uint8_t* L);

// Q3_K's variant: start from round-to-nearest with scale -nmax/max, then greedily move single levels while
// the weighted fit improves. L[i] in [0, 2*nmax). x[n], L[n].
float search_symmetric_greedy(int n, int nmax, const float* x, uint8_t* L);

// Offset levels L[i] in [0, nmax] meaning L[i] * scale - min (min >= 0 returned in *min_out). Weighted by
// w[n]. Candidate inverse scales (rmin + rdelta*k + nmax) / (max - min) for k in 0..nstep. use_abs picks
// weighted |error| instead of squared error as the criterion. x[n], w[n], L[n].
float search_offset(int n, int nmax, const float* x, const float* w, uint8_t* L, float* min_out, float rmin,
                    float rdelta, int nstep, bool use_abs);

}  // namespace minnow::qimpl
