#pragma once
// x86 CPU features detected at run time with cpuid / xgetbv (all false on other architectures).
namespace minnow {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512_vnni = false;
  bool avx_vnni = false;
};

const CpuFeatures& cpu_features();  // detected once, then cached

}  // namespace minnow
