// Copyright (c) mmgdkd contributors. All rights reserved.
//
// Loss rows and gradient of one block of rows once its partition is known
// (part of decoupled_kl.cpp, see there).
#ifndef MMGDKD_BLOCK_KERNEL_H_
#define MMGDKD_BLOCK_KERNEL_H_

#include "partition.h"

namespace mmgdkd_native {
namespace {  // one translation unit: decoupled_kl.cpp

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
    for (int j = 0; j < kBlock; ++j)
      ss[g][j] = st[g][j] = fw[g][j] = rv[g][j] = 0.0f;
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

}  // namespace
}  // namespace mmgdkd_native

#endif  // MMGDKD_BLOCK_KERNEL_H_
