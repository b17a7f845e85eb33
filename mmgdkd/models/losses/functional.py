# Copyright (c) mmgdkd contributors. All rights reserved.
"""The fused "decoupled KL" kernel behind every logit-distillation loss.

KD, DKD, GDKD and GDKD3 are one computation over a partition of the classes
into groups (see ``docs/losses.md`` and the spec): a KL between the group
masses of teacher and student (``high``) plus, per group, a divergence between
the distributions restricted to the group (``within``). KD is one group, DKD
is {label} / rest, GDKD is teacher top-k / rest, GDKD3 is top-1 / top-2..k /
rest. :func:`decoupled_kl` evaluates it for any partition.

Layout: every tensor is channel-first ``(N, C, L)`` -- a classification batch
is ``(N, C, 1)``, a segmentation map ``(N, C, H*W)`` -- and every reduction is
over ``dim=1``. This avoids the permute to ``(N*H*W, C)`` rows (a full copy)
and vectorises along ``L``; with ``C = 19`` a row is too short to vectorise.

Speed: the loss and, when the student needs it, the closed-form gradient
(docs/losses.md, "The gradient") are computed together in the forward pass;
only that gradient is kept for backward. Group masses are per-group sums of
one ``exp`` pass (float 0/1 masks split it exactly), never ``log`` of a sum
of probabilities and never three ``log_softmax`` pairs.

Backends: on CPU, float32, the fused native kernel ``csrc/decoupled_kl.cpp``
(built with the package, see ``setup.py``) computes partition, loss and
gradient in one sweep; :func:`_decoupled_kl_forward` below is the pure-torch
twin, used on CUDA, for float64, when the kernel is not built or is disabled
with ``MMGDKD_NATIVE=0``, and as the reference the kernel is tested against.

This file imports nothing from the OpenMMLab stack.
"""
import os
import warnings
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

_NATIVE_VERSION = 1  # must match kVersion in csrc/decoupled_kl.cpp


def _load_native():
    """The compiled kernel module, or ``None`` (not built, stale, or
    disabled by ``MMGDKD_NATIVE=0``)."""
    if os.environ.get('MMGDKD_NATIVE', '1') == '0':
        return None
    try:
        from . import _decoupled_kl_cpu as module
    except ImportError:
        return None
    if getattr(module, 'VERSION', None) != _NATIVE_VERSION:
        warnings.warn('mmgdkd: the built decoupled-KL kernel is stale '
                      f'(version {getattr(module, "VERSION", None)}, expected '
                      f'{_NATIVE_VERSION}); rebuild with `pip install -e .`. '
                      'Using the pure-torch path.')
        return None
    return module


_native = _load_native()


def native_available() -> bool:
    """Whether the fused CPU kernel is built and enabled."""
    return _native is not None


class TopK(NamedTuple):
    """Partition by the teacher: its ``k`` largest classes (smallest if not
    ``largest``) and the rest; with ``split_top1`` the top-1 class is a
    group of its own (GDKD3: top-1 / top-2..k / rest). ``span`` (max - min
    of the teacher logits) saves the torch path a pass if known."""
    k: int
    largest: bool = True
    split_top1: bool = False
    span: Optional[float] = None


class LabelGroup(NamedTuple):
    """Partition by the label (DKD): ``{label}`` and the rest. ``labels``
    is ``(N, L)`` int64 in ``[0, C)`` (remap ignored rows first)."""
    labels: Tensor

KL_TYPES = ('forward', 'reverse', 'both')
# (share of forward KL, share of reverse KL) in the within-group divergence.
_KL_SHARES = {'forward': (1.0, 0.0), 'reverse': (0.0, 1.0), 'both': (0.5, 0.5)}
# Exponentials are taken relative to the row max. A group whose sum falls
# below this has terms in the subnormal range, so the whole batch is redone
# with each group shifted by its own max (exact, slower, rare: a student or
# teacher more than ~69/T nats sure that the group is wrong).
_UNDERFLOW = 1e-30


def to_compute_dtype(x: Tensor) -> Tensor:
    """fp32 for fp16/bf16/fp32 inputs; float64 stays (for gradcheck)."""
    return x if x.dtype == torch.float64 else x.float()


# ---------------------------------------------------------------------------
# Partitions from the teacher
# ---------------------------------------------------------------------------
def _exact_rank_rows(logits: Tensor, bad: Tensor, k: int,
                     masks: List[Tensor]) -> None:
    """Rebuild ``masks`` (top-k, optionally top-1) on the rows ``bad`` from
    ``torch.topk`` indices, so that ties still give exactly ``k`` members."""
    n_idx, l_idx = bad.nonzero(as_tuple=True)
    rows = logits[n_idx, :, l_idx]  # (R, C)
    idx = rows.topk(k, dim=1, sorted=True).indices
    for mask, members in zip(masks, (idx, idx[:, :1])):
        mask[n_idx, :, l_idx] = torch.zeros_like(rows).scatter_(
            1, members, 1.0)


def topk_masks(logits: Tensor,
               k: int,
               largest: bool = True,
               with_top1: bool = False,
               span: Optional[float] = None
               ) -> Tuple[Tensor, Optional[Tensor]]:
    """Float {0, 1} masks of each row's ``k`` largest (or smallest) classes.

    Only the k-th value per row is needed (``mask = logits >= kth``). The
    ``r+1``-th value is the max of ``logits - knock * (logits >= kth_r)``, so
    ``k - 1`` such passes in one buffer find it, several times cheaper than
    ``torch.topk`` on a channel-first map. Rows where ties make the count
    differ from ``k`` are redone exactly from ``torch.topk`` indices (ties
    are common with fp16 teachers).

    Args:
        logits (Tensor): ``(N, C, L)`` finite teacher logits.
        k (int): Group size, ``1 <= k < C``.
        largest (bool): ``False`` selects the ``k`` smallest (bottom-k).
        with_top1 (bool): Also return the top-1 mask (a subset of top-k).
        span (float, optional): ``max - min`` of ``logits`` if known.

    Returns:
        tuple[Tensor, Tensor | None]: ``(N, C, L)`` float top-k mask and the
        top-1 mask (or ``None``).
    """
    y = to_compute_dtype(logits)
    if not largest:
        y = -y
    if span is None:
        lo, hi = torch.aminmax(y)
        span = float(hi - lo)
    # Knocked-out entries must fall below every row's min. A span near the
    # float max cannot be knocked out in fp32: use the exact path.
    knock = 2.0 * span + 1.0
    kth = y.amax(1, keepdim=True)
    top1 = torch.ge(y, kth).to(y.dtype) if with_top1 else None
    mask = torch.empty_like(y)
    if knock < 1e37:
        for _ in range(k - 1):
            torch.ge(y, kth, out=mask)
            kth = torch.add(y, mask, alpha=-knock, out=mask).amax(
                1, keepdim=True)
        bad = torch.ge(y, kth, out=mask).sum(1) != k
    else:
        bad = torch.ones_like(y[:, 0], dtype=torch.bool)
    if top1 is not None:
        bad |= top1.sum(1) != 1
    if bool(bad.any()):
        _exact_rank_rows(y, bad, k, [mask] +
                         ([top1] if top1 is not None else []))
    return mask, top1


def adaptive_k(logits: Tensor, temperature: float, ratio: float,
               max_k: int) -> Tuple[Tensor, Tensor]:
    """Per-row k by the authors' ratio rule (GDKD's experimental autok).

    Sort the softened teacher probabilities ascending, ``p_(0) <= ... <=
    p_(C-1)`` (0-based). The first position ``j`` with
    ``p_(j) / mean(p_(0..j)) >= ratio`` starts the top group, so
    ``k = C - j`` (the element at ``j`` and all above it); no such position
    gives ``k = 1``; then ``k`` is clamped to ``[1, max_k]``. This is the
    convention of ``calc_topk`` in ZaberKo/GDKD (``topk = 100 - idx[0]`` with
    C = 100 and 0-based ``idx``). A ratio of ``0/0`` (underflowed
    probabilities) counts as no jump, as there.

    Args:
        logits (Tensor): ``(N, C, L)`` teacher logits.
        temperature (float): Softening temperature of the probabilities.
        ratio (float): Jump threshold ``r`` (2 in the authors' code).
        max_k (int): Cap on ``k``.

    Returns:
        tuple[Tensor, Tensor]: ``k`` as ``(N, 1, L)`` int64 and the
        ascending sort indices ``(N, C, L)`` of the logits.
    """
    c = logits.shape[1]
    sorted_logits, order = to_compute_dtype(logits).sort(dim=1, stable=True)
    probs = torch.softmax(sorted_logits / temperature, dim=1)
    count = torch.arange(1, c + 1, device=logits.device, dtype=probs.dtype)
    jump = probs / (probs.cumsum(1) / count.view(1, c, 1)) >= ratio
    first = jump.byte().argmax(1, keepdim=True)  # first True (or 0 if none)
    k = torch.where(jump.any(1, keepdim=True), c - first,
                    torch.ones_like(first))
    return k.clamp_(1, max_k), order


def adaptive_topk_mask(logits: Tensor, temperature: float, ratio: float,
                       max_k: int) -> Tensor:
    """Float {0, 1} ``(N, C, L)`` mask of each row's adaptive top-k classes
    (:func:`adaptive_k`); ties are broken by sort order, so each row has
    exactly its ``k`` members."""
    k, order = adaptive_k(logits, temperature, ratio, max_k)
    c = logits.shape[1]
    rank = torch.arange(c, device=logits.device).view(1, c, 1)
    in_top = (rank >= c - k).float()  # positions in ascending order
    return torch.zeros_like(in_top).scatter_(1, order, in_top)


def label_mask(labels: Tensor, num_classes: int) -> Tensor:
    """Float one-hot ``(N, C, L)`` mask of ``labels`` ``(N, L)`` (DKD's
    target group). Labels must be in ``[0, C)`` (remap ignored rows first)."""
    n, length = labels.shape
    mask = torch.zeros(
        n, num_classes, length, device=labels.device, dtype=torch.float32)
    return mask.scatter_(1, labels.unsqueeze(1), 1.0)


def group_masks(group_ids: Tensor, num_groups: int) -> List[Tensor]:
    """Float masks of groups ``0 .. G-2`` from an integer ``(N, C, L)``
    group-id tensor (the last group is the implicit complement)."""
    return [(group_ids == g).float() for g in range(num_groups - 1)]


# ---------------------------------------------------------------------------
# The kernel
# ---------------------------------------------------------------------------
def _split(values: Tensor, masks: Sequence[Tensor]) -> List[Tensor]:
    """``values`` restricted to each group: ``values * mask`` per explicit
    mask, and the complement in place of ``values`` (exact, as every entry is
    either kept or zeroed)."""
    parts = [values * m for m in masks]
    for part in parts:
        values.sub_(part)
    return parts + [values]


def _group_centered(z: Tensor,
                    masks: Sequence[Tensor]) -> Tuple[Tensor, Tensor]:
    """``z`` minus the max of its own group, and the maxima ``(N, G, L)``:
    the exact path, where no group sum can underflow."""
    ninf = z.new_tensor(float('-inf'))
    shift = torch.zeros_like(z)
    taken = torch.zeros_like(z, dtype=torch.bool)
    maxima = []
    for m in masks:
        member = m.bool()
        gmax = torch.where(member, z, ninf).amax(1, keepdim=True)
        shift = torch.where(member, gmax, shift)
        taken |= member
        maxima.append(gmax)
    gmax = torch.where(taken, ninf, z).amax(1, keepdim=True)
    return z - torch.where(taken, shift, gmax), torch.cat(maxima + [gmax], 1)


def _decoupled_kl_forward(student: Tensor, teacher: Tensor,
                          masks: Sequence[Tensor], w0: float,
                          weights: Sequence[Optional[float]],
                          temperature: float, kl_type: str,
                          valid: Optional[Tensor], n_valid: int,
                          loss_weight: float, need_grad: bool,
                          exact: bool = False):
    """Loss, unweighted parts ``[high, D_0, ..]`` and the gradient of the loss
    w.r.t. ``student`` (or ``None``). See :func:`decoupled_kl`.

    Notation: ``c = (z - shift) / T``, ``e = exp(c)`` split by group, ``S``
    the group sums, ``d = c_t - c_s`` and ``lam = log S_s - log S_t``. Inside
    group g, ``log q^ - log p^ = d + lam_g``, hence
    ``KL(q^||p^) = sum(e_t d) / S_t + lam`` and
    ``KL(p^||q^) = -sum(e_s d) / S_s - lam``.

    On CPU every fresh full-size tensor is page-faulted in, which costs more
    than an arithmetic pass, so buffers are reused in place throughout.
    """
    inv_t = 1.0 / temperature
    n, n_groups = student.shape[0], len(masks) + 1
    fwd, rev = _KL_SHARES[kl_type]
    if exact:
        cs, s_shift = _group_centered(student, masks)
        ct, t_shift = _group_centered(teacher, masks)
    else:  # the row max, common to all groups
        s_max, t_max = student.amax(1, True), teacher.amax(1, True)
        cs, ct, s_shift, t_shift = student - s_max, teacher - t_max, None, None
    if inv_t != 1.0:
        cs.mul_(inv_t)
        ct.mul_(inv_t)
    # Forward KL needs d only after the gradient: it is then formed in a
    # freed buffer, one full-size tensor fewer alive (and allocated).
    d = torch.sub(ct, cs) if rev or exact else None
    es, et = _split(cs.exp_(), masks), _split(ct.exp_(), masks)
    sums = torch.stack([p.sum(1) for p in es + et], 1)  # (N, 2G, L)
    if n_groups > 1 and not exact:
        tiny = sums.amin(1) < _UNDERFLOW
        if valid is not None:
            tiny &= valid
        if bool(tiny.any()):
            del cs, ct, es, et, d
            return _decoupled_kl_forward(student, teacher, masks, w0, weights,
                                         temperature, kl_type, valid, n_valid,
                                         loss_weight, need_grad, True)
    s_sum, t_sum = sums[:, :n_groups], sums[:, n_groups:]
    logs = sums.log()
    lam = logs[:, :n_groups] - logs[:, n_groups:]
    # Log group masses per side, (N, 2, G, L).
    if exact:
        absolute = logs.view(n, 2, n_groups, -1) + torch.cat(
            [s_shift, t_shift], 1).view(n, 2, n_groups, -1) * inv_t
        log_b = absolute - absolute.logsumexp(2, keepdim=True)
    else:  # one shift for all groups of a row: it cancels
        log_b = logs.view(n, 2, n_groups, -1) - sums.view(
            n, 2, n_groups, -1).sum(2, keepdim=True).log_()
    mass = log_b.exp()
    del logs  # small per-row tensors add up: keep few alive

    active = [w is not None for w in weights]
    opts = dict(dtype=sums.dtype, device=sums.device)
    wf = torch.tensor([fwd * (w or 0.0) for w in weights], **opts)
    wr = torch.tensor([rev * (w or 0.0) for w in weights], **opts)
    wf, wr = wf.view(1, -1, 1), wr.view(1, -1, 1)
    within = torch.zeros_like(s_sum)  # D per group, 0 for singletons
    es_d = [None] * n_groups
    if rev:
        for g in range(n_groups):
            if active[g]:
                es_d[g] = es[g] * d
                within[:, g] = es_d[g].sum(1)
        rev_mean = within.div_(s_sum)  # sum(p^ d) per group
        for g in range(n_groups):
            if active[g]:  # p^ (d - sum(p^ d)): no 1e4 - 1e4 in the grad
                es_d[g].addcmul_(es[g], rev_mean[:, g:g + 1], value=-1.0)
        within = (rev_mean + lam).mul_(-rev)  # rev * KL(p^||q^)

    grad = None
    if need_grad:
        # Closed-form gradient (docs/losses.md, "The gradient"), member j
        # of group g:
        # T [w0 p^_j (b_s - b_t) + wf (p^_j - q^_j) + wr p^_j (r_j - R_g)]
        # with r = log p^ - log q^ = -(d + lam), R_g = KL(p^||q^), so
        # r_j - R_g = sum(p^ d) - d_j; written e_s * A_g - e_t * B_g -
        # e_s (d - sum(p^ d)) * C_g with per-row coefficients A, B, C.
        scale = loss_weight * temperature / n_valid
        row_scale = scale if valid is None else (
            valid.to(sums.dtype) * scale).unsqueeze(1)
        a = (mass[:, 0] - mass[:, 1]).mul_(w0).add_(wf).div_(s_sum)
        b = wf / t_sum if fwd else None
        c = wr / s_sum if rev else None
        for coef in (a, b, c):
            if coef is not None:
                coef.mul_(row_scale)
                if valid is not None:  # invalid rows may hold 0/0: keep 0
                    torch.nan_to_num_(coef, 0.0, 0.0, 0.0)
        # Accumulate into the last group's e_s, which is not needed after.
        grad = es[-1].mul_(a[:, -1:])
        for g in range(n_groups):
            if g < n_groups - 1:
                grad.addcmul_(es[g], a[:, g:g + 1])
            if active[g] and fwd:
                grad.addcmul_(et[g], b[:, g:g + 1], value=-1.0)
            if active[g] and rev:
                grad.addcmul_(es_d[g], c[:, g:g + 1], value=-1.0)
        del a, b, c, es_d
    if fwd:  # after the gradient, e_t is free to be multiplied in place
        if d is None:  # e_s of group 0 is no longer needed (unless it is
            # the gradient): d = (z_t - z_s - (max_t - max_s)) / T there.
            d = torch.sub(teacher, student,
                          out=es[0] if n_groups > 1 or grad is None else None)
            d.sub_(t_max - s_max)
            if inv_t != 1.0:
                d.mul_(inv_t)
        fwd_sum = torch.zeros_like(t_sum)
        for g in range(n_groups):
            if active[g]:
                fwd_sum[:, g] = et[g].mul_(d).sum(1)
        within.add_(fwd_sum.div_(t_sum).add_(lam).mul_(fwd))
    del es, et, d  # the gradient, if any, lives on as ``grad``
    if n_groups > 1:
        high = (mass[:, 1] * (log_b[:, 1] - log_b[:, 0])).sum(1, keepdim=True)
    else:
        high = torch.zeros_like(s_sum)
    within = within * torch.tensor(active, **opts).view(1, -1, 1)
    rows = torch.cat([high, within], 1)  # (N, 1 + G, L); singletons are 0
    if valid is not None:  # invalid rows may hold NaN
        rows = torch.where(valid.unsqueeze(1), rows, rows.new_zeros(()))
    parts = rows.sum((0, 2)) * (temperature * temperature / n_valid)
    return _weighted_total(parts, w0, weights, loss_weight), parts, grad


def _weighted_total(parts: Tensor, w0: float,
                    weights: Sequence[Optional[float]],
                    loss_weight: float) -> Tensor:
    """``loss_weight * (w0 * high + sum_g weights[g] * D_g)`` from
    ``parts = [high, D_0, ..]``."""
    group_w = parts.new_tensor([w or 0.0 for w in weights])
    return loss_weight * (w0 * parts[0] + (group_w * parts[1:]).sum())


def _partition_masks(partition, teacher: Tensor) -> List[Tensor]:
    """Float masks of groups ``0 .. G-2`` for the torch path."""
    if partition is None:
        return []
    if isinstance(partition, TopK):
        top, top1 = topk_masks(teacher, partition.k, partition.largest,
                               partition.split_top1, partition.span)
        return [top1, top.sub_(top1)] if partition.split_top1 else [top]
    if isinstance(partition, LabelGroup):
        return [label_mask(partition.labels, teacher.shape[1])]
    return list(partition)


def _native_forward(student: Tensor, teacher: Tensor, partition, w0: float,
                    weights: Sequence[Optional[float]], temperature: float,
                    kl_type: str, valid: Optional[Tensor], n_valid: int,
                    loss_weight: float, need_grad: bool):
    """:func:`_decoupled_kl_forward` by the fused CPU kernel (float32)."""
    n, c, length = student.shape
    labels = ids = None
    if partition is None:
        mode, k = 0, 0
    elif isinstance(partition, TopK):
        mode = 4 if partition.split_top1 else (2 if partition.largest else 3)
        k = partition.k
    elif isinstance(partition, LabelGroup):
        mode, k, labels = 1, 0, partition.labels.to(torch.int64)
    else:  # explicit masks -> uint8 group ids
        mode, k = 5, 0
        ids = torch.full(student.shape, len(partition), dtype=torch.uint8)
        for g, mask in enumerate(partition):
            ids.masked_fill_(mask.bool(), g)
    if length == 1 and n > 1:
        # Rows are vectorised along L: a (N, C) batch becomes (1, C, N).
        student = student.reshape(n, c).t().unsqueeze(0)
        teacher = teacher.reshape(n, c).t().unsqueeze(0)
        if valid is not None:
            valid = valid.reshape(1, n)
        if labels is not None:
            labels = labels.reshape(1, n)
        if ids is not None:
            ids = ids.reshape(n, c).t().unsqueeze(0)
    student, teacher = student.contiguous(), teacher.contiguous()
    if labels is not None:
        labels = labels.contiguous()
    if ids is not None:
        ids = ids.contiguous()
    valid_u8 = None if valid is None else valid.to(torch.uint8).contiguous()
    grad = torch.empty_like(student) if need_grad else None
    fwd, rev = _KL_SHARES[kl_type]

    def ptr(t):
        return 0 if t is None else t.data_ptr()

    sums = _native.forward(
        ptr(student), ptr(teacher), ptr(grad), ptr(valid_u8), ptr(labels),
        ptr(ids), *student.shape, mode, k, len(weights), 1.0 / temperature,
        w0, fwd, rev, [w or 0.0 for w in weights],
        [0.0 if w is None else 1.0 for w in weights],
        loss_weight * temperature / n_valid, torch.get_num_threads())
    parts = torch.tensor(sums, dtype=torch.float32) * (
        temperature * temperature / n_valid)
    if grad is not None and length == 1 and n > 1:
        grad = grad.view(c, n).t().unsqueeze(2)
    return _weighted_total(parts, w0, weights, loss_weight), parts, grad


def _use_native(student: Tensor, teacher: Tensor, partition,
                n_groups: int) -> bool:
    """Whether the fused CPU kernel handles this call: float32 (or fp16/bf16,
    computed in float32) CPU logits and a partition it knows."""
    if _native is None or n_groups > _native.MAX_GROUPS:
        return False
    if isinstance(partition, TopK) and partition.split_top1 \
            and not partition.largest:  # bottom-1 / bottom-2..k: torch only
        return False
    return all(x.device.type == 'cpu' and x.dtype != torch.float64
               for x in (student, teacher))


class _DecoupledKL(torch.autograd.Function):
    """Loss and closed-form gradient in one forward; backward only scales the
    saved gradient. The teacher gets no gradient (it is detached by
    contract)."""

    @staticmethod
    def forward(ctx, student, teacher, partition, w0, weights, temperature,
                kl_type, valid, n_valid, loss_weight):
        need_grad = ctx.needs_input_grad[0]
        with torch.autocast(student.device.type, enabled=False):
            args = (to_compute_dtype(student), to_compute_dtype(teacher))
            if _use_native(student, teacher, partition, len(weights)):
                loss, parts, grad = _native_forward(
                    *args, partition, w0, weights, temperature, kl_type,
                    valid, n_valid, loss_weight, need_grad)
            else:
                masks = _partition_masks(partition, args[1])
                loss, parts, grad = _decoupled_kl_forward(
                    *args, masks, w0, weights, temperature, kl_type, valid,
                    n_valid, loss_weight, need_grad)
        ctx.input_dtype = student.dtype
        if grad is not None:
            ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(parts)
        return loss, parts

    @staticmethod
    def backward(ctx, grad_loss, grad_parts):
        grad, = ctx.saved_tensors
        # A loss summed straight into the total gets exactly 1; if the graph
        # is not retained the saved gradient can be handed over as is (one
        # full-size pass and allocation less). Only on CPU, where reading the
        # value does not synchronise a device.
        if not (grad_loss.device.type == 'cpu' and not _graph_kept()
                and float(grad_loss) == 1.0):
            grad = grad * grad_loss
        return (grad.to(ctx.input_dtype), ) + (None, ) * 9


def _graph_kept() -> bool:
    """Whether the running backward keeps the graph (``retain_graph``);
    ``True`` when this torch cannot tell."""
    getter = getattr(torch._C._autograd, '_get_current_graph_task_keep_graph',
                     None)
    return True if getter is None else bool(getter())


def decoupled_kl(student: Tensor,
                 teacher: Tensor,
                 groups: Union[None, TopK, LabelGroup, Tensor,
                               Sequence[Tensor]],
                 w0: float,
                 weights: Sequence[Optional[float]],
                 temperature: float = 1.0,
                 kl_type: str = 'forward',
                 valid: Optional[Tensor] = None,
                 loss_weight: float = 1.0) -> Tuple[Tensor, Tensor]:
    """Decoupled KL over a class partition, fused loss and gradient.

    Per row, with ``G`` groups, temperature ``T``, masses ``b`` and
    restricted distributions ``p^``, ``q^`` (docs/losses.md, GDKDLoss)::

        T^2 * (w0 * KL(b_t || b_s) + sum_g weights[g] * D(q^_g, p^_g))

    averaged over the valid rows and times ``loss_weight``. ``D`` is the
    forward KL ``KL(q^||p^)``, the reverse ``KL(p^||q^)`` or their mean
    (``kl_type``); the group-mass term is always forward KL.

    Args:
        student (Tensor): ``(N, C, L)`` student logits, any float dtype.
        teacher (Tensor): ``(N, C, L)`` teacher logits; treated as a constant
            (no gradient flows to it).
        groups: ``None`` for one group (KD); a :class:`TopK` or
            :class:`LabelGroup` partition (groups in the order they
            describe, the rest last); ``G - 1`` disjoint ``(N, C, L)``
            bool/float masks for groups ``0 .. G-2``, the last group being
            the complement; or an integer ``(N, C, L)`` tensor of group ids
            in ``[0, len(weights))``. Every group must be non-empty on every
            row.
        w0 (float): Weight of the group-mass KL.
        weights (Sequence[float | None]): Per-group weight of ``D``;
            ``None`` marks a singleton group (its ``D`` is 0, skipped).
        temperature (float): ``T > 0``.
        kl_type (str): ``'forward'``, ``'reverse'`` or ``'both'``.
        valid (Tensor, optional): ``(N, L)`` bool, rows that count.
        loss_weight (float): Global factor.

    Returns:
        tuple[Tensor, Tensor]: The fp32 scalar loss (float64 for float64
        inputs) and the detached ``(1 + G,)`` unweighted parts ``[high, D_0, .., D_{G-1}]`` (means
        over valid rows, times ``T^2``), so that ``loss == loss_weight *
        (w0 * parts[0] + sum_g weights[g] * parts[1 + g])``. With no valid
        row the loss is ``student.sum() * 0`` (a zero that keeps the graph).
    """
    if groups is None:
        partition, n_groups = None, 1
    elif isinstance(groups, TopK):
        partition, n_groups = groups, 3 if groups.split_top1 else 2
    elif isinstance(groups, LabelGroup):
        partition, n_groups = groups, 2
    else:
        if isinstance(groups, Tensor):
            groups = group_masks(groups, len(weights))
        dtype = (torch.float64
                 if student.dtype == torch.float64 else torch.float32)
        partition = [m if m.dtype == dtype else m.to(dtype) for m in groups]
        n_groups = len(partition) + 1
    if n_groups != len(weights):
        raise ValueError(f'{n_groups} groups but {len(weights)} weights')
    if kl_type not in KL_TYPES:
        raise ValueError(f'kl_type must be one of {KL_TYPES}, got '
                         f'{kl_type!r}')
    if valid is None:
        n_valid = student.shape[0] * student.shape[2]
    else:
        n_valid = int(valid.sum())
    if n_valid == 0:
        zero = (student.sum() * 0).float()
        return zero, zero.new_zeros(1 + len(weights))
    return _DecoupledKL.apply(student, teacher, partition, float(w0),
                              list(weights), float(temperature), kl_type,
                              valid, n_valid, float(loss_weight))
