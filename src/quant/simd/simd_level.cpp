#include "quant/simd/simd_level.h"

#include <atomic>
#include <cstdlib>

#include "common/cpu_features.h"
#include "common/error.h"

namespace minnow {

namespace {
std::atomic<int> g_level{-1};
}

const char* simd_level_name(SimdLevel l) {
  switch (l) {
    case SimdLevel::Scalar: return "scalar";
    case SimdLevel::Avx2: return "avx2";
    case SimdLevel::Avx512: return "avx512";
  }
  return "?";
}

SimdLevel parse_simd_level(const std::string& s) {
  if (s == "scalar") return SimdLevel::Scalar;
  if (s == "avx2") return SimdLevel::Avx2;
  if (s == "avx512") return SimdLevel::Avx512;
  throw Error("unknown SIMD level '" + s + "' (expected scalar, avx2 or avx512)");
}

bool simd_level_supported(SimdLevel l) {
#if defined(__x86_64__)
  const CpuFeatures& f = cpu_features();
  switch (l) {
    case SimdLevel::Scalar: return true;
    case SimdLevel::Avx2: return f.avx2 && f.fma && f.f16c;
    case SimdLevel::Avx512:
      return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512_vnni;
  }
  return false;
#else
  return l == SimdLevel::Scalar;
#endif
}

SimdLevel simd_best_level() {
  if (simd_level_supported(SimdLevel::Avx512)) return SimdLevel::Avx512;
  if (simd_level_supported(SimdLevel::Avx2)) return SimdLevel::Avx2;
  return SimdLevel::Scalar;
}

std::vector<SimdLevel> simd_supported_levels() {
  std::vector<SimdLevel> v;
  for (SimdLevel l : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512})
    if (simd_level_supported(l)) v.push_back(l);
  return v;
}

void set_simd_level(SimdLevel l) {
  if (!simd_level_supported(l))
    throw Error(std::string("SIMD level ") + simd_level_name(l) + " is not supported by this CPU");
  g_level.store(static_cast<int>(l), std::memory_order_relaxed);
}

SimdLevel simd_level() {
  int v = g_level.load(std::memory_order_relaxed);
  if (v >= 0) return static_cast<SimdLevel>(v);
  SimdLevel l = simd_best_level();
  if (const char* env = std::getenv("MINNOW_SIMD"); env && *env) {
    l = parse_simd_level(env);
    if (!simd_level_supported(l))
      throw Error(std::string("MINNOW_SIMD=") + env + " is not supported by this CPU");
  }
  g_level.store(static_cast<int>(l), std::memory_order_relaxed);
  return l;
}

}  // namespace minnow
