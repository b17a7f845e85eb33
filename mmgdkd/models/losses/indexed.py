# Copyright (c) mmgdkd contributors. All rights reserved.
"""The pure-torch decoupled KL for partitions given by class indices.

KD (one group), DKD ({label} / rest) and GDKD / GDKD3 (teacher top-k, split
or not, / rest) have small groups named by ``(N, k, L)`` class indices and
one large rest group. The small groups are computed on ``(N, k, L)``
gathered logits; the rest group on one full-size copy per side in which
the small groups' entries are set to the rest group's own max (so the
shift by it leaves them finite) and their ``exp`` is zeroed: every
exclusion is a scatter at the ``(N, k, L)`` indices, and the loss and its
closed-form gradient cost a few full-size passes more than KD. Every group
is shifted by its own max, so a tiny rest mass keeps its precision
(docs/losses.md).

Sync-free and ``torch.compile(fullgraph=True)``-clean. This file imports
nothing from the OpenMMLab stack.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .partitions import knock_out_topk
from .validation import CallConfig

# (share of forward KL, share of reverse KL) in the within-group divergence.
KL_SHARES = {'forward': (1.0, 0.0), 'reverse': (0.0, 1.0), 'both': (0.5, 0.5)}


def reduce_parts(high: Tensor, forward_kl: Optional[Tensor],
                 reverse_kl: Optional[Tensor], config: CallConfig,
                 valid: Optional[Tensor]) -> Tuple[Tensor, Tensor, object]:
    """The weighted loss, the parts ``[high, D_0, ..]`` (means over the
    valid rows, times ``T^2``) and the valid-row count, from per-row
    ``high`` ``(N, L)`` and the within-group KL sums ``(N, G, L)`` of the
    forward / reverse share (``None`` where the share is 0); shared by the
    indexed and the mask formulation."""
    fwd, rev = KL_SHARES[config.kl_type]
    t = config.temperature
    n, length = high.shape
    zero = high.new_zeros(n, length)
    within = [
        (fwd * forward_kl[:, g] if fwd else zero) +
        (rev * reverse_kl[:, g] if rev else zero) if w is not None else zero
        for g, w in enumerate(config.weights)
    ]
    rows = torch.stack([high] + within, 1)  # (N, 1 + G, L)
    if valid is None:
        n_valid = float(n * length)
    else:
        n_valid = valid.sum().to(rows.dtype).clamp(min=1)
        rows = torch.where(valid.unsqueeze(1), rows, 0.0)
    parts = rows.sum((0, 2)) * (t * t) / n_valid
    group_w = [w or 0.0 for w in config.weights]
    loss = config.loss_weight * (config.w0 * parts[0] + sum(
        w * parts[1 + g] for g, w in enumerate(group_w)))
    return loss, parts, n_valid


def _exclude(z: Tensor, index: Tensor, knocked: bool = False) -> Tensor:
    """In place on ``z`` ``(N, C, L)``: the max ``(N, 1, L)`` of each row
    outside ``index`` ``(N, K, L)``, written at the ``index`` entries too
    (``knocked``: they already hold ``-inf``)."""
    if not knocked:
        z.scatter_(1, index, torch.full_like(index, -float('inf'),
                                             dtype=z.dtype))
    top = z.amax(1, keepdim=True)
    z.scatter_(1, index, top.expand(-1, index.shape[1], -1))
    return top


def _restricted(z: Tensor, index: Optional[Tensor], top: Optional[Tensor],
                out: Optional[Tensor] = None
                ) -> Tuple[Tensor, Tensor, Tensor]:
    """In place on ``z`` ``(N, C, L)``: ``log p^`` of the rest group (``z``
    itself; finite everywhere), ``p^`` (exactly 0 off the group) and its
    logsumexp ``(N, 1, L)``, shifted by the group's own max ``top`` (the
    row max for ``index=None``; else :func:`_exclude` has set the other
    groups' entries to it)."""
    if top is None:
        top = z.amax(1, keepdim=True)
    z.sub_(top)
    exp = torch.exp(z) if out is None else torch.exp(z, out=out)
    if index is not None:
        exp.scatter_(1, index, torch.zeros_like(index, dtype=exp.dtype))
    total = exp.sum(1, keepdim=True)
    log_total = total.log()
    return z.sub_(log_total), exp.div_(total), top + log_total


def _lse(x: Tensor) -> Tensor:
    """Logsumexp over ``dim=1`` of a small ``(N, K, L)`` tensor, keepdim:
    fewer ops than ``torch.logsumexp`` (no special case for infinite
    maxima; non-finite logits give a non-finite loss either way)."""
    if x.shape[1] == 1:
        return x
    top = x.amax(1, keepdim=True)
    return top + (x - top).exp_().sum(1, keepdim=True).log_()


def _small(z: Tensor, bounds: Sequence[int]) -> Tuple[Tensor, Tensor]:
    """``log p^`` ``(N, K, L)`` of gathered logits ``z`` split into groups
    at ``bounds``, and each group's logsumexp ``(N, G, L)``."""
    lse = torch.cat([_lse(z[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])],
                    1) if len(bounds) > 2 else _lse(z)
    return z - _spread(lse, bounds), lse


def _spread(values: Tensor, bounds: Sequence[int]) -> Tensor:
    """Per-group ``(N, G, L)`` values over each group's members: ``(N, K,
    L)``, or ``(N, 1, L)`` (broadcast) for one group."""
    if len(bounds) == 2:
        return values[:, :1]
    return torch.cat([
        values[:, g:g + 1].expand(-1, b - a, -1)
        for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))
    ], 1)


def _segment_sums(x: Tensor, bounds: Sequence[int]) -> Tensor:
    if len(bounds) == 2:
        return x.sum(1, keepdim=True)
    return torch.cat([
        x[:, a:b].sum(1, keepdim=True)
        for a, b in zip(bounds[:-1], bounds[1:])
    ], 1)


def indexed_forward(student: Tensor, teacher: Tensor, index: Optional[Tensor],
                    bounds: Sequence[int], config: CallConfig,
                    valid: Optional[Tensor], need_grad: bool
                    ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Loss, parts ``[high, D_0, ..]`` and the gradient w.r.t. ``student``
    (or ``None``), as docs/losses.md writes them.

    Args:
        student, teacher (Tensor): ``(N, C, L)`` logits (fp32 or float64).
        index (Tensor | int | None): ``(N, K, L)`` int64 classes of the
            small groups; an int ``k``: the teacher's top-k, found here
            (:func:`knock_out_topk`); ``None``: one group, KD.
        bounds (Sequence[int]): Group ``g < G - 1`` is ``index[:, a:b]``
            with ``a, b = bounds[g], bounds[g + 1]``; the rest is last.
    """
    t = config.temperature
    fwd, rev = KL_SHARES[config.kl_type]
    # Eager on CPU a fresh full-size tensor costs more in page faults than
    # the pass that fills it: reuse buffers (a compiled graph plans its own).
    eager = not torch.compiler.is_compiling()
    scratch = torch.empty_like(teacher) if eager else None
    top_rt = top_rs = None  # the rest group's max, (N, 1, L)
    if isinstance(index, int):  # the teacher's top-k, found here
        zt = teacher + 0.0  # a copy; -0.0 compares equal to +0.0
        index, top_t = knock_out_topk(zt, index, scratch=scratch)
        if t != 1:
            zt.div_(t)
            top_t = top_t / t  # the same rounding as zt at those entries
        top_rt = _exclude(zt, index, knocked=True)
    elif index is not None:
        zt = teacher / t if t != 1 else teacher.clone()
        top_t = zt.gather(1, index)
        top_rt = _exclude(zt, index)
    else:
        zt = teacher / t if t != 1 else teacher.clone()
    zs = student / t if t != 1 else student.clone()
    if index is not None:
        lpt_k, lse_t = _small(top_t, bounds)
        lps_k, lse_s = _small(zs.gather(1, index), bounds)
        top_rs = _exclude(zs, index)
    lps, ps, lse_rs = _restricted(zs, index, top_rs)
    lpt, pt, lse_rt = _restricted(zt, index, top_rt, out=scratch)
    if index is not None:
        lse_s = torch.cat([lse_s, lse_rs], 1)
        lse_t = torch.cat([lse_t, lse_rt], 1)
    else:
        lse_s, lse_t = lse_rs, lse_rt
    # Group log-masses log b(g) = lse_g - logsumexp_g' lse_g', (N, G, L).
    log_bs = lse_s - _lse(lse_s)
    log_bt = lse_t - _lse(lse_t)
    bt = log_bt.exp()
    high = (bt * (log_bt - log_bs)).sum(1)  # KL(b_t || b_s), (N, L)
    log_ratio = lpt.sub_(lps)  # log q^ - log p^, rest group
    if index is not None:
        ps_k, pt_k = lps_k.exp(), lpt_k.exp()
        log_ratio_k = lpt_k - lps_k
    # Within-group KLs (N, G, L): forward sum_g q^ log(q^/p^), reverse
    # sum_g p^ log(p^/q^); 0 for singleton groups (weight None).
    n_small = len(bounds) - 1 if index is not None else 0

    def kl_sums(p, p_k):
        # lps is no longer needed: its buffer takes the product.
        rest = (torch.mul(p, log_ratio) if not eager else torch.mul(
            p, log_ratio, out=lps)).sum(1, keepdim=True)
        if index is None:
            return rest
        return torch.cat([_segment_sums(p_k * log_ratio_k, bounds), rest], 1)

    forward_kl = kl_sums(pt, pt_k if n_small else None) if fwd else None
    reverse_kl = -kl_sums(ps, ps_k if n_small else None) if rev else None
    loss, parts, n_valid = reduce_parts(high, forward_kl, reverse_kl,
                                        config, valid)
    group_w = [w or 0.0 for w in config.weights]
    if not need_grad:
        return loss, parts, None
    # docs/losses.md "The gradient"; member j of group g,
    # r_j = log p^_j - log q^_j:
    # T [w0 p^_j (b_s - b_t) + wf (p^_j - q^_j) + wr p^_j (r_j - R_g)],
    # wf, wr the forward / reverse shares of the group's weight and
    # R_g = KL(p^ || q^) of the group. Per entry:
    # p^ (w0 (b_s - b_t) + wf) - wf q^ - wr p^ (log(q^/p^) + R_g);
    # log(q^/p^) + R_g is formed first: both may be ~1e4 and cancel.
    # The per-row scale is folded into the per-group coefficients.
    scale = config.loss_weight * t / n_valid
    if valid is not None:
        scale = valid.unsqueeze(1).to(high.dtype) * scale
    mass_diff = config.w0 * (log_bs.exp() - bt)
    grads = []
    for g, w in enumerate(group_w):
        last = g == len(group_w) - 1
        p, q = (ps, pt) if last else (ps_k[:, bounds[g]:bounds[g + 1]],
                                      pt_k[:, bounds[g]:bounds[g + 1]])
        ratio = log_ratio if last else \
            log_ratio_k[:, bounds[g]:bounds[g + 1]]
        if rev:  # in place: the rest group's buffers are not needed again
            reverse = (ratio.add_(reverse_kl[:, g:g + 1]) if last else
                       ratio + reverse_kl[:, g:g + 1]).mul_(p)
        grad = p.mul_(
            (mass_diff[:, g:g + 1] + fwd * w) * scale) if last else \
            p * ((mass_diff[:, g:g + 1] + fwd * w) * scale)
        if fwd and w:
            coef = fwd * w * scale
            if isinstance(coef, Tensor):
                grad.addcmul_(q, coef, value=-1.0)
            else:
                grad.add_(q, alpha=-coef)
        if rev and w:
            grad.sub_(reverse.mul_(rev * w * scale))
        grads.append(grad)
    grad = grads[-1]
    if index is not None:
        grad.scatter_(1, index, torch.cat(grads[:-1], 1))
    return loss, parts, grad
