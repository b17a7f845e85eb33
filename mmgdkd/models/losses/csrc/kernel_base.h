// Copyright (c) mmgdkd contributors. All rights reserved.
//
// The decoupled-KL kernel's constants, call parameters and compiler
// switches, and the branch-free exp / log its loops vectorise with (part of
// decoupled_kl.cpp, see there).
#ifndef MMGDKD_KERNEL_BASE_H_
#define MMGDKD_KERNEL_BASE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

namespace mmgdkd_native {
namespace {  // one translation unit: decoupled_kl.cpp

constexpr int kBlock = 16;     // rows per block: one AVX-512 register of floats
constexpr int kMaxGroups = 4;  // partitions with more groups use the torch path

// The same list as ``Mode`` in native.py (exported as MODES and compared at
// load time).
enum Mode : int {
  kWhole = 0,    // one group (KD)
  kLabel = 1,    // {label} / rest (DKD)
  kTopK = 2,     // teacher top-k / rest (GDKD)
  kBottomK = 3,  // teacher bottom-k / rest (GDKD ablation 'worst')
  kTopK3 = 4,    // top-1 / top-2..k / rest (GDKD3)
  kGroupIds = 5  // explicit uint8 group ids (adaptive k, custom partitions)
};

struct Params {
  const float* student;
  const float* teacher;
  float* grad;             // nullptr: no gradient wanted
  const uint8_t* valid;    // (N, L) or nullptr (every row counts)
  const int64_t* labels;   // (N, L), kLabel only
  const uint8_t* ids;      // (N, C, L), kGroupIds only
  int64_t n, c, l;
  int mode, k, groups;
  float inv_t, w0;
  float fwd, rev;          // shares of forward / reverse KL in D
  float wf[kMaxGroups];    // fwd * weight of D per group (0: no D)
  float wr[kMaxGroups];    // rev * weight of D per group
  float active[kMaxGroups];  // 1 where the group's D is computed
  float grad_scale;        // loss_weight * T / n_valid
  float tiny;              // group sums below this take the exact path
};

#if defined(MMGDKD_TARGET_CLONES)
#define MMGDKD_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MMGDKD_CLONES
#endif
#if defined(_MSC_VER)
#define MMGDKD_INLINE __forceinline
#define MMGDKD_SIMD
#else
#define MMGDKD_INLINE inline __attribute__((always_inline))
// Loops across the rows of a block are vectorised (-fopenmp-simd; no
// OpenMP runtime is linked).
#define MMGDKD_SIMD _Pragma("omp simd")
#endif

// Below this exp(x) is subnormal: such terms count as exactly 0.
constexpr float kExpMin = -87.33654475f;  // log(FLT_MIN)

// exp for x <= 0 (arguments are shifted by a maximum), branch-free so that
// it vectorises: Cody-Waite range reduction and the Cephes expf polynomial,
// about 1 ulp. Results below FLT_MIN are exactly 0 (never subnormal, never
// a made-up ~1e-38); NaN stays NaN. The polynomial runs on a clamped copy
// of x (NaN -> 0 by the comparisons), so the float -> int conversion and
// the shift below are always defined.
MMGDKD_INLINE float exp_nonpositive(float x) {
  float xc = x > kExpMin ? x : kExpMin;  // NaN -> kExpMin
  xc = xc < 0.0f ? xc : 0.0f;
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // n in [-126, 0]: the biased exponent is in [1, 127].
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127)
                        << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  const float y = p * scale;
  return x >= kExpMin ? y : (x != x ? x : 0.0f);
}

// log for normal x > 0 (group sums, in [1e-30, C]), branch-free:
// exponent split and the Cephes logf polynomial, about 1 ulp.
MMGDKD_INLINE float log_positive(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  float e = static_cast<float>(static_cast<int32_t>((bits >> 23) & 0xffu) -
                               126);
  bits = (bits & 0x007fffffu) | 0x3f000000u;  // mantissa in [0.5, 1)
  float m;
  std::memcpy(&m, &bits, sizeof(m));
  const bool small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return m + y + 0.693359375f * e;
}

}  // namespace
}  // namespace mmgdkd_native

#endif  // MMGDKD_KERNEL_BASE_H_
