# Copyright (c) mmgdkd contributors. All rights reserved.
"""The pure-torch decoupled KL for partitions given by class indices.

KD (one group), DKD ({label} / rest) and GDKD / GDKD3 (teacher top-k, split
or not, / rest) have small groups named by ``(N, k, L)`` class indices and
one large rest group. The small groups are computed on ``(N, k, L)``
gathered logits; the rest group on one full-size copy per side: the small
groups' entries are set to ``-inf`` (a scatter at the indices; for the
teacher's top-k the knock-out that finds them leaves them so) to take the
rest group's max, the copy is then formed again from the logits shifted
by it, and a scatter zeroes the small groups' ``exp``: ``p^ = 0`` there
and ``log p^`` finite, so every product of the two is exactly 0 (an
``exp`` over scattered ``-inf`` takes twice as long on CPU). The loss and
its closed-form gradient cost a few
full-size passes more than KD. Every group is shifted by its own max, so
a tiny rest mass keeps its precision (docs/losses.md).

Sync-free and ``torch.compile(fullgraph=True)``-clean. This file imports
nothing from the OpenMMLab stack.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .partitions import knock_out_topk, scalar_source
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


class _Group(NamedTuple):
    """One side's restricted distribution over a group: ``log p^``, ``p^``
    (same shape as the group's logits) and the logsumexp ``(N, 1, L)``."""
    log_p: Tensor
    p: Tensor
    lse: Tensor


def _normalised(shifted: Tensor, top: Tensor, out: Optional[Tensor] = None,
                zero_at: Optional[Tensor] = None) -> _Group:
    """The group from its logits ``shifted`` by its max ``top``
    (``(N, 1, L)``), in place on ``shifted`` (``log p^``); ``out``: a
    buffer for ``p^``; ``zero_at``: ``(N, K, L)`` indices of other groups'
    entries, whose ``exp`` is zeroed."""
    exp = torch.exp(shifted) if out is None else torch.exp(shifted, out=out)
    if zero_at is not None:
        exp.scatter_(1, zero_at, scalar_source(zero_at, 0.0, exp))
    total = exp.sum(1, keepdim=True)
    log_total = total.log()
    return _Group(shifted.sub_(log_total), exp.div_(total), top + log_total)


def _restricted(z: Tensor, top: Optional[Tensor] = None,
                out: Optional[Tensor] = None) -> _Group:
    """``log_softmax`` / ``softmax`` of ``z`` over ``dim=1``, in place on
    ``z`` (``log p^``), shifted by its max ``top`` (``(N, 1, L)``; found
    here if ``None``); ``out``: a buffer for ``p^``."""
    if top is None:
        top = z.amax(1, keepdim=True)
    return _normalised(z.sub_(top), top, out)


def _rest_group(z: Tensor, source: Tensor, t: float, index: Tensor,
                eager: bool, out: Optional[Tensor] = None) -> _Group:
    """The rest group from its full-size copy ``z`` (``source / t`` with
    ``-inf`` at the small groups' ``index``): shifted by its max, then
    formed again from ``source`` in ``z``'s buffer so that those entries
    are finite (on CPU an ``exp`` over scattered ``-inf`` takes twice as
    long), and their ``exp`` zeroed: ``p^ = 0`` there, ``log p^`` finite."""
    top = z.amax(1, keepdim=True)
    if not eager:
        shifted = (source / t if t != 1 else source) - top
    elif t != 1:
        shifted = torch.div(source, t, out=z).sub_(top)
    else:
        shifted = torch.sub(source, top, out=z)
    return _normalised(shifted, top, out, zero_at=index)


def _small_groups(z: Tensor, bounds: Sequence[int],
                  best_first: bool) -> List[_Group]:
    """The small groups ``z[:, a:b]`` of gathered ``(N, K, L)`` logits at
    ``bounds`` (in place: ``z`` becomes ``log p^``); ``best_first``: each
    group's first entry is its max (the teacher's top-k values), so no
    ``amax`` is needed."""
    groups = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        zg = z[:, a:b]
        top = zg[:, :1].clone() if best_first or b - a == 1 else zg.amax(
            1, keepdim=True)
        groups.append(_restricted(zg, top))
    return groups


def _log_masses(lse: Tensor) -> Tensor:
    """Group log-masses ``log b = lse - logsumexp(lse)`` from the groups'
    logsumexps ``(N, G, L)``."""
    top = lse.amax(1, keepdim=True)
    return lse - (top + (lse - top).exp_().sum(1, keepdim=True).log_())


def indexed_forward(student: Tensor, teacher: Tensor,
                    index: Union[Tensor, int, None], bounds: Sequence[int],
                    config: CallConfig,
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
    best_first = isinstance(index, int)
    if best_first:  # the teacher's top-k, found here
        zt = teacher + 0.0  # a copy; -0.0 compares equal to +0.0
        index, zt_k = knock_out_topk(zt, index, scratch=scratch)
        if t != 1:
            zt.div_(t)
            zt_k = zt_k / t  # the same rounding as zt at those entries
    else:
        zt = teacher / t if t != 1 else teacher.clone()
        if index is not None:
            zt_k = zt.gather(1, index)
            zt.scatter_(1, index, scalar_source(index, -float('inf'), zt))
    zs = student / t if t != 1 else student.clone()
    small_s = small_t = []
    if index is not None:
        zs_k = zs.gather(1, index)
        zs.scatter_(1, index, scalar_source(index, -float('inf'), zs))
        small_t = _small_groups(zt_k, bounds, best_first)
        small_s = _small_groups(zs_k, bounds, best_first=False)
    if index is None:
        rest_s = _restricted(zs)
        rest_t = _restricted(zt, out=scratch)
    else:
        rest_s = _rest_group(zs, student, t, index, eager)
        rest_t = _rest_group(zt, teacher, t, index, eager, out=scratch)
    # Group log-masses log b (N, G, L) and KL(b_t || b_s) (N, L).
    log_bs = _log_masses(torch.cat([g.lse for g in small_s + [rest_s]], 1))
    log_bt = _log_masses(torch.cat([g.lse for g in small_t + [rest_t]], 1))
    bt = log_bt.exp()
    high = (bt * (log_bt - log_bs)).sum(1)
    # log q^ - log p^ (finite where p^ = q^ = 0: products with it are 0).
    ratios = [gt.log_p - gs.log_p for gt, gs in zip(small_t, small_s)]
    ratios.append(rest_t.log_p.sub_(rest_s.log_p))
    ps = [g.p for g in small_s] + [rest_s.p]
    pt = [g.p for g in small_t] + [rest_t.p]
    # Within-group KLs (N, G, L): forward sum_g q^ log(q^/p^), reverse
    # sum_g p^ log(p^/q^); 0 for singleton groups (weight None).
    # rest_s.log_p is no longer needed: its buffer takes the last product.
    product_out = [None] * (len(ratios) - 1) + [rest_s.log_p if eager else
                                                None]

    def kl_sums(p: List[Tensor]) -> Tensor:
        return torch.cat([
            torch.mul(pg, rg, out=o).sum(1, keepdim=True)
            for pg, rg, o in zip(p, ratios, product_out)
        ], 1)

    forward_kl = kl_sums(pt) if fwd else None
    reverse_kl = -kl_sums(ps) if rev else None
    loss, parts, n_valid = reduce_parts(high, forward_kl, reverse_kl,
                                        config, valid)
    if not need_grad:
        return loss, parts, None
    # docs/losses.md "The gradient"; member j of group g,
    # r_j = log p^_j - log q^_j:
    # T [w0 p^_j (b_s - b_t) + wf (p^_j - q^_j) + wr p^_j (r_j - R_g)],
    # wf, wr the forward / reverse shares of the group's weight and
    # R_g = KL(p^ || q^) of the group. Per entry:
    # p^ (w0 (b_s - b_t) + wf) - wf q^ - wr p^ (log(q^/p^) + R_g);
    # log(q^/p^) + R_g is formed first: both may be ~1e4 and cancel.
    # The per-row scale is folded into the per-group coefficients; the
    # rest group's buffers are not needed again and are updated in place.
    scale = config.loss_weight * t / n_valid
    if valid is not None:
        scale = valid.unsqueeze(1).to(high.dtype) * scale
    mass_diff = config.w0 * (log_bs.exp() - bt)
    grads = []
    for g, w in enumerate(w or 0.0 for w in config.weights):
        p, q, ratio = ps[g], pt[g], ratios[g]
        if rev:
            reverse = ratio.add_(reverse_kl[:, g:g + 1]).mul_(p)
        grad = p.mul_((mass_diff[:, g:g + 1] + fwd * w) * scale)
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
        small = grads[0] if len(grads) == 2 else torch.cat(grads[:-1], 1)
        grad.scatter_(1, index, small)
    return loss, parts, grad
