// Copyright (c) mmgdkd contributors. All rights reserved.
//
// Fused CPU kernel of the decoupled KL (KD, DKD, GDKD, GDKD3): the class
// partition, the loss and the closed-form gradient of docs/losses.md ("The
// gradient") in one sweep over the logits, for float32 channel-first
// ``(N, C, L)`` tensors.
//
// The Python twin is the torch path (``indexed.py``, ``decoupled.py``); it is
// the reference this kernel is tested against and the path for CUDA, float64
// and builds without this extension. The torch path needs a dozen full-size
// passes for GDKD (top-k, group split, sums, gradient); here a block of
// ``kBlock`` rows (pixels) is loaded once and every step runs on it while it
// sits in L1, vectorised across the rows, so GDKD costs little more than KD.
//
// Partition: a first pass over the block takes the row maxima and the
// teacher's k + 1 largest values (an insertion network, kept in registers).
// Where the k-th value is above the (k+1)-th on every row, an entry's group
// is its teacher value against the k-th, computed where it is used (no
// group-id pass); otherwise ties give some row more than k members and
// group ids are formed with ties broken towards the lower class index.
//
// Numerics: exponentials are taken after a shift by the row maximum; a block
// where some group sum falls below 1e-30 (a group ~69 nats below the row's
// best class) is redone with every group shifted by its own maximum, where
// no group sum can underflow (each holds exp(0) = 1). Group masses are
// log-sum-exps of in-group terms only (selected, never masked by a large
// negative number). A non-finite student logit makes its row's loss and
// gradient NaN (as in the torch path), so that AMP's grad scaler sees it.
//
// Plain C++17 and the CPython API only (no torch headers): it builds in
// seconds and runs on any CPU; on x86-64 with GCC >= 12 (setup.py probes the
// compiler and defines MMGDKD_TARGET_CLONES) the hot loops are also compiled
// for AVX2 and AVX-512 and picked at load time (``target_clones``).
//
// Errors: no C++ exception leaves the module. ``std::bad_alloc`` (scratch
// buffers) becomes MemoryError, anything else (e.g. ``std::system_error``
// from ``std::thread``) RuntimeError; a worker thread's exception is carried
// to the caller.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kVersion = 2;    // checked by the Python side against stale builds
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

// Per-thread scratch for one block.
struct Scratch {
  std::vector<float> s, t;        // (C, kBlock) logits of the block
  std::vector<float> es, et;      // (C, kBlock) exp of the shifted logits
  std::vector<float> gid;         // (C, kBlock) group of each entry (as
                                  // float: every lane 32 bits wide)
  std::vector<float> kth;         // (k + 1, kBlock) the teacher's k + 1
                                  // largest values, best first
  float max_s[kBlock], max_t[kBlock];  // row maxima
  float finite[kBlock];           // sum of s * 0: NaN iff a logit is not finite
  // The block's logits: entry (c, j) at sp[c * stride + j]; the inputs
  // themselves (stride L) or, for a last partial block, s/t padded.
  const float* sp = nullptr;
  const float* tp = nullptr;
  int64_t stride = kBlock;
  explicit Scratch(const Params& p)
      : s(p.c * kBlock), t(p.c * kBlock), es(p.c * kBlock),
        et(p.c * kBlock), gid(p.c * kBlock),
        kth((std::max(p.k, 0) + 1) * kBlock) {}
};

// Group of a top-k partition entry. kTopK3 (split): 0 top-1, 1 top-2..k,
// 2 rest; otherwise 0 top-k, 1 rest. member/first are 0 or 1.
MMGDKD_INLINE float topk_group(float member, float first, bool split) {
  return split ? 2.0f - member - first : 1.0f - member;
}

// One pass over the block's classes: the row maxima of student and
// teacher, the student's NaN flag and, for the top-k modes, the teacher's
// V = k + 1 largest values (of -t for bottom-k) by insertion, vectorised
// across the rows. With V known at compile time they stay in registers.
// The (k+1)-th value tells whether ties give a row more than k members.
// Blocks ahead to prefetch: 2 C rows of a block are 2 C separate streams
// (one cache line each), more than the hardware prefetcher follows.
constexpr int kAhead = 4;

// A hint only (never faults): the address may lie past the tensor, so it
// is formed as an integer.
MMGDKD_INLINE void prefetch(const float* x, int64_t ahead) {
#if defined(__GNUC__)
  __builtin_prefetch(reinterpret_cast<const void*>(
      reinterpret_cast<uintptr_t>(x) + ahead * sizeof(float)));
#else
  (void)x;
  (void)ahead;
#endif
}

template <int V>
MMGDKD_CLONES void scan_block_fixed(const Params& p, Scratch& w) {
  const float sign = p.mode == kBottomK ? -1.0f : 1.0f;
  const float ninf = -std::numeric_limits<float>::infinity();
  float v[V > 0 ? V : 1][kBlock];
  float ms[kBlock], mt[kBlock], fin[kBlock];
  MMGDKD_SIMD
  for (int j = 0; j < kBlock; ++j) {
    ms[j] = mt[j] = ninf;
    fin[j] = 0.0f;
    for (int i = 0; i < V; ++i) v[i][j] = ninf;
  }
  for (int64_t c = 0; c < p.c; ++c) {
    const float* s = w.sp + c * w.stride;
    const float* t = w.tp + c * w.stride;
    prefetch(s, kAhead * kBlock);
    prefetch(t, kAhead * kBlock);
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) {
      ms[j] = std::max(ms[j], s[j]);
      mt[j] = std::max(mt[j], t[j]);
      fin[j] += s[j] * 0.0f;
      float x = sign * t[j];
      for (int i = 0; i < V; ++i) {
        const float hi = std::max(v[i][j], x);
        x = std::min(v[i][j], x);
        v[i][j] = hi;
      }
    }
  }
  std::memcpy(w.max_s, ms, sizeof(ms));
  std::memcpy(w.max_t, mt, sizeof(mt));
  std::memcpy(w.finite, fin, sizeof(fin));
  if (V > 0) std::memcpy(w.kth.data(), v, sizeof(float) * V * kBlock);
}

// scan_block_fixed for any number of values (k > 5), kept in w.kth.
MMGDKD_CLONES
void scan_block_any(const Params& p, Scratch& w, int values) {
  const float sign = p.mode == kBottomK ? -1.0f : 1.0f;
  const float ninf = -std::numeric_limits<float>::infinity();
  float* v = w.kth.data();
  for (int i = 0; i < values * kBlock; ++i) v[i] = ninf;
  for (int j = 0; j < kBlock; ++j) {
    w.max_s[j] = w.max_t[j] = ninf;
    w.finite[j] = 0.0f;
  }
  for (int64_t c = 0; c < p.c; ++c) {
    const float* s = w.sp + c * w.stride;
    const float* t = w.tp + c * w.stride;
    float x[kBlock];
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) {
      w.max_s[j] = std::max(w.max_s[j], s[j]);
      w.max_t[j] = std::max(w.max_t[j], t[j]);
      w.finite[j] += s[j] * 0.0f;
      x[j] = sign * t[j];
    }
    for (int i = 0; i < values; ++i) {
      float* vi = v + i * kBlock;
      MMGDKD_SIMD
      for (int j = 0; j < kBlock; ++j) {
        const float hi = std::max(vi[j], x[j]);
        x[j] = std::min(vi[j], x[j]);
        vi[j] = hi;
      }
    }
  }
}

// Scans the block (scan_block_fixed); for the top-k modes returns whether
// comparing with the k-th value alone gives every row exactly k members
// (and one top-1 for kTopK3): the k-th value is above the (k+1)-th (and
// the top above the second). Otherwise ties need assign_topk_exact.
bool scan_block(const Params& p, Scratch& w, int width) {
  const bool topk = p.mode == kTopK || p.mode == kBottomK || p.mode == kTopK3;
  switch (topk ? p.k + 1 : 0) {
    case 0: scan_block_fixed<0>(p, w); return true;
    case 2: scan_block_fixed<2>(p, w); break;
    case 3: scan_block_fixed<3>(p, w); break;
    case 4: scan_block_fixed<4>(p, w); break;
    case 5: scan_block_fixed<5>(p, w); break;
    case 6: scan_block_fixed<6>(p, w); break;
    default: scan_block_any(p, w, p.k + 1); break;
  }
  const float* kth = w.kth.data() + (p.k - 1) * kBlock;
  const float* next = kth + kBlock;
  const float* top = w.kth.data();
  bool exact = true;
  for (int j = 0; j < width; ++j)  // padding lanes (zeros) always tie
    exact = exact && next[j] < kth[j] &&
            (p.mode != kTopK3 || top[kBlock + j] < top[j]);
  return exact;
}

// Group ids with ties broken towards the lower class index, so that every
// row has exactly k members (ties are common with fp16 teachers).
void assign_topk_exact(const Params& p, Scratch& w) {
  const float sign = p.mode == kBottomK ? -1.0f : 1.0f;
  const float* kth = w.kth.data() + (p.k - 1) * kBlock;
  const float* top = w.kth.data();
  const bool split_top1 = p.mode == kTopK3;
  for (int j = 0; j < kBlock; ++j) {
    int above = 0;
    for (int64_t c = 0; c < p.c; ++c)
      above += sign * w.tp[c * w.stride + j] > kth[j];
    int equal_left = p.k - above;
    bool top1_left = true;
    for (int64_t c = 0; c < p.c; ++c) {
      const float y = sign * w.tp[c * w.stride + j];
      const bool tie = y == kth[j] && equal_left > 0;
      equal_left -= tie;
      const bool member = y > kth[j] || tie;
      const bool first = split_top1 && top1_left && y == top[j];
      top1_left = top1_left && !first;
      w.gid[c * kBlock + j] =
          topk_group(member ? 1.0f : 0.0f, first ? 1.0f : 0.0f, split_top1);
    }
  }
}

// Exponentials below this in a group sum mean the row-max shift was too
// far from the group's own maximum (a group ~69 nats or more below the
// row's best class): the block is redone with group-wise shifts. The
// threshold grows with C: terms below FLT_MIN count as 0, and C of them
// must stay below 1e-7 of a group sum that is kept (see Params::tiny).
constexpr float kTiny = 1e-30f;

// The group of entry (c, j) of a block: its id, or (INLINE) for a top-k
// partition without ties (scan_block) the teacher value against the k-th
// and, for kTopK3 (G = 3), the top value.
template <int G, bool INLINE>
MMGDKD_INLINE float group_of(const float* gc, const float* t, const float* kth,
                             const float* top, float sign, int j) {
  if (!INLINE) return gc[j];
  const float member = sign * t[j] >= kth[j] ? 1.0f : 0.0f;
  const float first = G == 3 && t[j] >= top[j] ? 1.0f : 0.0f;
  return topk_group(member, first, G == 3);
}

// Loss rows and gradient of one block once scan_block has run and its
// group ids are set (or INLINE) (REV: the divergence has a reverse-KL
// share). EXACT:
// each group is shifted by its own maximum (never underflows); otherwise by
// the row maximum (cheaper), and false is returned, with nothing written,
// if a group sum is below kTiny.
template <int G, bool EXACT, bool REV, bool INLINE>
MMGDKD_CLONES bool block_kernel(const Params& p, Scratch& w, int64_t n,
                                int64_t l0, int width, double* acc) {
  const int64_t c_n = p.c;
  const float inv_t = p.inv_t;
  const float ninf = -std::numeric_limits<float>::infinity();
  const float* gid = w.gid.data();
  const float sign = p.mode == kBottomK ? -1.0f : 1.0f;
  const float* kth = w.kth.data() + std::max(p.k - 1, 0) * kBlock;
  const float* top1 = w.kth.data();
  const float* finite = w.finite;
  // The exp shifts: group (EXACT) or row maxima of student and teacher.
  float gs[G][kBlock], gt[G][kBlock];
  for (int g = 0; g < G; ++g)
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) {
      gs[g][j] = EXACT && G > 1 ? ninf : w.max_s[j];
      gt[g][j] = EXACT && G > 1 ? ninf : w.max_t[j];
    }
  for (int64_t c = 0; EXACT && G > 1 && c < c_n; ++c) {
    const float* s = w.sp + c * w.stride;
    const float* t = w.tp + c * w.stride;
    const float* gc = gid + c * kBlock;
    for (int g = 0; g < G; ++g) {
      MMGDKD_SIMD
      for (int j = 0; j < kBlock; ++j) {
        const bool in = group_of<G, INLINE>(gc, t, kth, top1, sign, j) == g;
        gs[g][j] = std::max(gs[g][j], in ? s[j] : ninf);
        gt[g][j] = std::max(gt[g][j], in ? t[j] : ninf);
      }
    }
  }
  // exp of the shifted logits, group sums, sum(e_t d) and sum(e_s d) with
  // d = c_t - c_s (c = shifted logits / T).
  float ss[G][kBlock], st[G][kBlock], fw[G][kBlock], rv[G][kBlock];
  for (int g = 0; g < G; ++g)
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) ss[g][j] = st[g][j] = fw[g][j] = rv[g][j] = 0.0f;
  for (int64_t c = 0; c < c_n; ++c) {
    const float* s = w.sp + c * w.stride;
    const float* t = w.tp + c * w.stride;
    float* es = w.es.data() + c * kBlock;
    float* et = w.et.data() + c * kBlock;
    const float* gc = gid + c * kBlock;
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) {
      const float group =
          G == 1 ? 0.0f : group_of<G, INLINE>(gc, t, kth, top1, sign, j);
      float shift_s = gs[0][j], shift_t = gt[0][j];
      for (int g = 1; EXACT && g < G; ++g) {
        shift_s = group == g ? gs[g][j] : shift_s;
        shift_t = group == g ? gt[g][j] : shift_t;
      }
      const float cs = (s[j] - shift_s) * inv_t;
      const float ct = (t[j] - shift_t) * inv_t;
      const float e_s = exp_nonpositive(cs), e_t = exp_nonpositive(ct);
      const float d = ct - cs;
      es[j] = e_s;
      et[j] = e_t;
      // Sums kept in registers (a second loop over stored values stalled
      // on reading them back).
      for (int g = 0; g < G; ++g) {
        const bool in = G == 1 || group == g;
        ss[g][j] += in ? e_s : 0.0f;
        st[g][j] += in ? e_t : 0.0f;
        fw[g][j] += in ? e_t * d : 0.0f;
        if (REV) rv[g][j] += in ? e_s * d : 0.0f;
      }
    }
  }
  if (!EXACT && G > 1) {
    bool ok = true;
    for (int g = 0; g < G; ++g)
      for (int j = 0; j < width; ++j)
        ok = ok && ss[g][j] >= p.tiny && st[g][j] >= p.tiny;
    if (!ok) return false;
  }
  // Per row (vectorised across the block): log group masses
  // log b(g) = log S(g) + shift(g) / T - log sum_g' (...), the loss terms
  // and the per-group gradient coefficients. Every S(g) is in [tiny, C].
  float lam[G][kBlock];
  float coef_a[G][kBlock], coef_b[G][kBlock], coef_c[G][kBlock],
      rmean[G][kBlock];
  float high[kBlock], within[G][kBlock], scale[kBlock], bad[kBlock];
  bool counted[kBlock];
  MMGDKD_SIMD
  for (int j = 0; j < kBlock; ++j) {
    counted[j] = j < width &&
                 (p.valid == nullptr || p.valid[n * p.l + l0 + j] != 0);
    scale[j] = counted[j] ? p.grad_scale : 0.0f;
    // Rows that do not count must not turn the loss NaN.
    bad[j] = counted[j] ? finite[j] : 0.0f;
  }
  // log b and b per group: with one shift for every group (not EXACT),
  // b(g) = S(g) / sum_g' S(g') (no exp, a division per group); otherwise
  // each S(g) is rescaled by its group's shift first.
  float ls[G][kBlock], lt[G][kBlock], bs[G][kBlock], bt[G][kBlock];
  for (int g = 0; g < G; ++g)
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) {
      const float log_ss = log_positive(ss[g][j]);
      const float log_st = log_positive(st[g][j]);
      lam[g][j] = log_ss - log_st;
      ls[g][j] = log_ss;
      lt[g][j] = log_st;
    }
  if (!EXACT) {
    float tot_s[kBlock] = {0}, tot_t[kBlock] = {0};
    for (int g = 0; g < G; ++g)
      MMGDKD_SIMD
      for (int j = 0; j < kBlock; ++j) {
        tot_s[j] += ss[g][j];
        tot_t[j] += st[g][j];
      }
    for (int g = 0; g < G; ++g)
      MMGDKD_SIMD
      for (int j = 0; j < kBlock; ++j) {
        bs[g][j] = ss[g][j] / tot_s[j];
        bt[g][j] = st[g][j] / tot_t[j];
        ls[g][j] -= log_positive(tot_s[j]);
        lt[g][j] -= log_positive(tot_t[j]);
      }
  } else {
    // Shifts enter relative to the largest one: adding large logits to
    // log sums of order 1 would round them away.
    float top_s[kBlock], top_t[kBlock], max_s[kBlock], max_t[kBlock];
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) {
      top_s[j] = gs[0][j];
      top_t[j] = gt[0][j];
      for (int g = 1; g < G; ++g) {
        top_s[j] = std::max(top_s[j], gs[g][j]);
        top_t[j] = std::max(top_t[j], gt[g][j]);
      }
      max_s[j] = max_t[j] = -std::numeric_limits<float>::infinity();
    }
    for (int g = 0; g < G; ++g)
      MMGDKD_SIMD
      for (int j = 0; j < kBlock; ++j) {
        ls[g][j] += (gs[g][j] - top_s[j]) * inv_t;
        lt[g][j] += (gt[g][j] - top_t[j]) * inv_t;
        max_s[j] = std::max(max_s[j], ls[g][j]);
        max_t[j] = std::max(max_t[j], lt[g][j]);
      }
    float sum_s[kBlock] = {0}, sum_t[kBlock] = {0};
    for (int g = 0; g < G; ++g)
      MMGDKD_SIMD
      for (int j = 0; j < kBlock; ++j) {
        sum_s[j] += exp_nonpositive(ls[g][j] - max_s[j]);
        sum_t[j] += exp_nonpositive(lt[g][j] - max_t[j]);
      }
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) {
      max_s[j] += log_positive(sum_s[j]);  // now the log normalisers
      max_t[j] += log_positive(sum_t[j]);
    }
    for (int g = 0; g < G; ++g)
      MMGDKD_SIMD
      for (int j = 0; j < kBlock; ++j) {
        ls[g][j] -= max_s[j];
        lt[g][j] -= max_t[j];
        bs[g][j] = exp_nonpositive(ls[g][j]);
        bt[g][j] = exp_nonpositive(lt[g][j]);
      }
  }
  MMGDKD_SIMD
  for (int j = 0; j < kBlock; ++j) high[j] = 0.0f;
  for (int g = 0; g < G; ++g) {
    const float w_fwd = p.fwd, w_rev = p.rev, on = p.active[g];
    const float wf = p.wf[g], wr = p.wr[g], w0 = p.w0;
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) {
      if (G > 1) high[j] += bt[g][j] * (lt[g][j] - ls[g][j]);
      const float inv_ss = 1.0f / ss[g][j], inv_st = 1.0f / st[g][j];
      const float mean_rev = rv[g][j] * inv_ss;
      // forward KL(q^||p^) = sum(e_t d) / S_t + lam,
      // reverse KL(p^||q^) = -sum(e_s d) / S_s - lam
      within[g][j] = on * (w_fwd * (fw[g][j] * inv_st + lam[g][j]) -
                           w_rev * (mean_rev + lam[g][j]));
      // d loss / d z_j = T [w0 p^_j (b_s - b_t) + wf (p^_j - q^_j)
      //                     + wr p^_j (sum(p^ d) - d_j)] (docs/losses.md)
      coef_a[g][j] =
          (w0 * (bs[g][j] - bt[g][j]) + wf) * inv_ss * scale[j] + bad[j];
      coef_b[g][j] = wf * inv_st * scale[j];
      coef_c[g][j] = wr * inv_ss * scale[j];
      rmean[g][j] = mean_rev;
    }
  }
  float block_high = 0.0f, block_within[G] = {0};
  for (int j = 0; j < kBlock; ++j) {
    block_high += counted[j] ? high[j] + bad[j] : 0.0f;
    for (int g = 0; g < G; ++g)
      block_within[g] += counted[j] ? within[g][j] : 0.0f;
  }
  acc[0] += block_high;
  for (int g = 0; g < G; ++g) acc[1 + g] += block_within[g];
  if (p.grad == nullptr) return true;
  for (int64_t c = 0; c < c_n; ++c) {
    const float* s = w.sp + c * w.stride;
    const float* t = w.tp + c * w.stride;
    const float* es = w.es.data() + c * kBlock;
    const float* et = w.et.data() + c * kBlock;
    const float* gc = gid + c * kBlock;
    // A full block is stored straight into the gradient; a partial one via
    // a buffer (a memcpy call per class and block cost ~5% of a step).
    float* dst = p.grad + (n * c_n + c) * p.l + l0;
    float buffer[kBlock];
    float* out = width == kBlock ? dst : buffer;
    MMGDKD_SIMD
    for (int j = 0; j < kBlock; ++j) {
      float a = coef_a[0][j], b = coef_b[0][j], cc = coef_c[0][j],
            m = rmean[0][j], shift_s = gs[0][j], shift_t = gt[0][j];
      const float group = G == 1 ? 0.0f :
          group_of<G, INLINE>(gc, t, kth, top1, sign, j);
      for (int g = 1; g < G; ++g) {
        const bool in = group == g;
        a = in ? coef_a[g][j] : a;
        b = in ? coef_b[g][j] : b;
        if (REV) {
          cc = in ? coef_c[g][j] : cc;
          m = in ? rmean[g][j] : m;
        }
        if (EXACT && REV) {
          shift_s = in ? gs[g][j] : shift_s;
          shift_t = in ? gt[g][j] : shift_t;
        }
      }
      float value = es[j] * a - et[j] * b;
      if (REV) {
        const float d = ((t[j] - shift_t) - (s[j] - shift_s)) * inv_t;
        value -= es[j] * (d - m) * cc;
      }
      out[j] = value;
    }
    if (width < kBlock) std::memcpy(dst, buffer, sizeof(float) * width);
  }
  return true;
}

// Load block (n, l0..l0+width) into scratch (tail rows padded with zeros,
// which are valid logits: they are computed and discarded).
void load_block(const Params& p, Scratch& w, int64_t n, int64_t l0,
                int width) {
  const int64_t base = n * p.c * p.l + l0;
  if (width == kBlock) {
    w.sp = p.student + base;
    w.tp = p.teacher + base;
    w.stride = p.l;
  } else {
    for (int64_t c = 0; c < p.c; ++c) {
      float* s = w.s.data() + c * kBlock;
      float* t = w.t.data() + c * kBlock;
      std::memcpy(s, p.student + base + c * p.l, sizeof(float) * width);
      std::memcpy(t, p.teacher + base + c * p.l, sizeof(float) * width);
      std::fill(s + width, s + kBlock, 0.0f);
      std::fill(t + width, t + kBlock, 0.0f);
    }
    w.sp = w.s.data();
    w.tp = w.t.data();
    w.stride = kBlock;
  }
  if (p.mode == kGroupIds) {
    for (int64_t c = 0; c < p.c; ++c) {
      const uint8_t* ids = p.ids + base + c * p.l;
      float* g = w.gid.data() + c * kBlock;
      MMGDKD_SIMD
      for (int j = 0; j < kBlock; ++j)
        g[j] = j < width ? static_cast<float>(ids[j]) : 0.0f;
    }
  }
  if (p.mode == kLabel) {
    float label[kBlock];
    for (int j = 0; j < kBlock; ++j)
      label[j] = j < width ? static_cast<float>(p.labels[n * p.l + l0 + j])
                           : 0.0f;
    for (int64_t c = 0; c < p.c; ++c) {
      float* g = w.gid.data() + c * kBlock;
      const float cf = static_cast<float>(c);
      MMGDKD_SIMD
      for (int j = 0; j < kBlock; ++j) g[j] = label[j] == cf ? 0.0f : 1.0f;
    }
  }
}

// The block's loss and gradient: row-max shifts, or group-wise shifts
// where a group sum underflows.
template <int G, bool INLINE>
void run_block(const Params& p, Scratch& w, int64_t n, int64_t l0, int width,
               double* acc) {
  if (p.rev != 0.0f) {
    if (!block_kernel<G, false, true, INLINE>(p, w, n, l0, width, acc))
      block_kernel<G, true, true, INLINE>(p, w, n, l0, width, acc);
  } else if (!block_kernel<G, false, false, INLINE>(p, w, n, l0, width, acc)) {
    block_kernel<G, true, false, INLINE>(p, w, n, l0, width, acc);
  }
}

template <int G>
void run_blocks(const Params& p, int64_t first, int64_t last, double* acc) {
  Scratch w(p);
  const int64_t per_row = (p.l + kBlock - 1) / kBlock;
  for (int64_t b = first; b < last; ++b) {
    const int64_t n = b / per_row;
    const int64_t l0 = (b % per_row) * kBlock;
    const int width = static_cast<int>(std::min<int64_t>(kBlock, p.l - l0));
    load_block(p, w, n, l0, width);
    const bool topk = p.mode == kTopK || p.mode == kBottomK || p.mode == kTopK3;
    const bool no_ties = scan_block(p, w, width);
    if (topk && !no_ties) assign_topk_exact(p, w);
    if constexpr (G == 2 || G == 3) {
      if (topk && no_ties) {
        run_block<G, true>(p, w, n, l0, width, acc);
        continue;
      }
    }
    run_block<G, false>(p, w, n, l0, width, acc);
  }
}

// Splits the blocks over threads. Throws whatever a thread threw (after
// every started thread has been joined).
void run(const Params& p, int threads, double* totals) {
  const int64_t per_row = (p.l + kBlock - 1) / kBlock;
  const int64_t blocks = p.n * per_row;
  // Below ~64k entries a thread costs more than it saves.
  const int64_t useful = std::max<int64_t>(1, blocks * kBlock * p.c / 65536);
  threads = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>({threads, useful, blocks})));
  std::vector<double> acc(threads * (1 + kMaxGroups), 0.0);
  std::vector<std::exception_ptr> errors(threads);
  auto work = [&](int i) {
    try {
      const int64_t first = blocks * i / threads;
      const int64_t last = blocks * (i + 1) / threads;
      double* a = acc.data() + i * (1 + kMaxGroups);
      switch (p.groups) {
        case 1: run_blocks<1>(p, first, last, a); break;
        case 2: run_blocks<2>(p, first, last, a); break;
        case 3: run_blocks<3>(p, first, last, a); break;
        default: run_blocks<4>(p, first, last, a); break;
      }
    } catch (...) {
      errors[i] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  try {
    pool.reserve(threads - 1);
    for (int i = 1; i < threads; ++i) pool.emplace_back(work, i);
  } catch (...) {
    for (auto& th : pool) th.join();
    throw;
  }
  work(0);
  for (auto& th : pool) th.join();
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
  // Fixed order: the same thread count gives the same bits.
  for (int i = 0; i < threads; ++i)
    for (int g = 0; g <= p.groups; ++g)
      totals[g] += acc[i * (1 + kMaxGroups) + g];
}

PyObject* py_forward(PyObject*, PyObject* args) {
  unsigned long long student, teacher, grad, valid, labels, ids;
  long long n, c, l;
  int mode, k, groups, threads;
  float inv_t, w0, fwd, rev, grad_scale;
  PyObject *weights, *active;
  if (!PyArg_ParseTuple(args, "KKKKKKLLLiiiffffOOfi", &student, &teacher,
                        &grad, &valid, &labels, &ids, &n, &c, &l, &mode, &k,
                        &groups, &inv_t, &w0, &fwd, &rev, &weights, &active,
                        &grad_scale, &threads))
    return nullptr;
  if (groups < 1 || groups > kMaxGroups || mode < kWhole || mode > kGroupIds ||
      n < 1 || c < 2 || l < 1 ||
      ((mode == kTopK || mode == kBottomK || mode == kTopK3) &&
       (k < 1 || k >= c))) {
    PyErr_SetString(PyExc_ValueError, "decoupled_kl kernel: bad arguments");
    return nullptr;
  }
  Params p{};
  p.student = reinterpret_cast<const float*>(student);
  p.teacher = reinterpret_cast<const float*>(teacher);
  p.grad = reinterpret_cast<float*>(grad);
  p.valid = reinterpret_cast<const uint8_t*>(valid);
  p.labels = reinterpret_cast<const int64_t*>(labels);
  p.ids = reinterpret_cast<const uint8_t*>(ids);
  p.n = n; p.c = c; p.l = l;
  p.mode = mode; p.k = k; p.groups = groups;
  p.inv_t = inv_t; p.w0 = w0; p.fwd = fwd; p.rev = rev;
  p.grad_scale = grad_scale;
  // C terms below FLT_MIN (counted as 0) stay below 1e-7 of a kept sum.
  p.tiny = static_cast<float>(std::max<double>(
      kTiny, static_cast<double>(c) * std::numeric_limits<float>::min() * 1e7));
  for (int g = 0; g < groups; ++g) {
    PyObject* wo = PySequence_GetItem(weights, g);
    PyObject* ao = PySequence_GetItem(active, g);
    if (wo == nullptr || ao == nullptr) {
      Py_XDECREF(wo); Py_XDECREF(ao);
      return nullptr;
    }
    const double wg = PyFloat_AsDouble(wo), ag = PyFloat_AsDouble(ao);
    Py_DECREF(wo); Py_DECREF(ao);
    if (PyErr_Occurred()) return nullptr;
    p.wf[g] = static_cast<float>(fwd * wg);
    p.wr[g] = static_cast<float>(rev * wg);
    p.active[g] = static_cast<float>(ag);
  }
  double totals[1 + kMaxGroups] = {0};
  // No exception may cross into CPython (it would abort the interpreter):
  // caught here, turned into a Python exception once the GIL is back.
  PyObject* error_type = nullptr;
  const char* error_what = "";
  std::string error_message;
  Py_BEGIN_ALLOW_THREADS
  try {
    run(p, std::max(threads, 1), totals);
  } catch (const std::bad_alloc&) {
    error_type = PyExc_MemoryError;
    error_what = "out of memory for the scratch buffers";
  } catch (const std::exception& exc) {
    error_type = PyExc_RuntimeError;
    try {
      error_message = exc.what();
    } catch (...) {
    }
    error_what = error_message.c_str();
  } catch (...) {
    error_type = PyExc_RuntimeError;
    error_what = "unknown C++ exception";
  }
  Py_END_ALLOW_THREADS
  if (error_type != nullptr) {
    PyErr_Format(error_type, "decoupled_kl kernel: %s", error_what);
    return nullptr;
  }
  PyObject* out = PyTuple_New(1 + groups);
  if (out == nullptr) return nullptr;
  for (int g = 0; g <= groups; ++g) {
    PyObject* value = PyFloat_FromDouble(totals[g]);
    if (value == nullptr) {
      Py_DECREF(out);
      return nullptr;
    }
    PyTuple_SET_ITEM(out, g, value);
  }
  return out;
}

PyMethodDef kMethods[] = {
    {"forward", py_forward, METH_VARARGS,
     "forward(student, teacher, grad, valid, labels, ids, N, C, L, mode, k, "
     "groups, inv_t, w0, fwd, rev, weights, active, grad_scale, threads) -> "
     "row sums (high, D_0, .., D_{G-1}); writes the gradient if grad != 0."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "_decoupled_kl_cpu",
                       "Fused CPU decoupled-KL kernel (see decoupled_kl.cpp).",
                       -1, kMethods};

}  // namespace

PyMODINIT_FUNC PyInit__decoupled_kl_cpu(void) {
  PyObject* m = PyModule_Create(&kModule);
  if (m == nullptr) return nullptr;
  PyModule_AddIntConstant(m, "VERSION", kVersion);
  PyModule_AddIntConstant(m, "MAX_GROUPS", kMaxGroups);
  PyObject* modes = Py_BuildValue("(ssssss)", "whole", "label", "topk",
                                  "bottomk", "topk3", "group_ids");
  if (modes == nullptr || PyModule_AddObject(m, "MODES", modes) < 0) {
    Py_XDECREF(modes);
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
