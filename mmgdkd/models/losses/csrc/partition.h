// Copyright (c) mmgdkd contributors. All rights reserved.
//
// The class partition of a block of rows: the block's loading, the first
// pass (row maxima, the teacher's top-k values) and group ids where ties
// or the mode need them (part of decoupled_kl.cpp, see there).
#ifndef MMGDKD_PARTITION_H_
#define MMGDKD_PARTITION_H_

#include <vector>

#include "kernel_base.h"

namespace mmgdkd_native {
namespace {  // one translation unit: decoupled_kl.cpp

// Per-thread scratch for one block.
struct Scratch {
  std::vector<float> s, t;        // (C, kBlock) logits of the block
  std::vector<float> es, et;      // (C, kBlock) exp of the shifted logits
  std::vector<float> gid;         // (C, kBlock) group of each entry (as
                                  // float: every lane 32 bits wide)
  std::vector<float> kth;         // (k + 1, kBlock) the teacher's k + 1
                                  // largest values, best first
  float max_s[kBlock], max_t[kBlock];  // row maxima
  float finite[kBlock];           // s * 0 summed: NaN iff s is not finite
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

}  // namespace
}  // namespace mmgdkd_native

#endif  // MMGDKD_PARTITION_H_
