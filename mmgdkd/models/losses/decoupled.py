# Copyright (c) mmgdkd contributors. All rights reserved.
"""The decoupled KL behind every logit-distillation loss.

KD, DKD, GDKD and GDKD3 are one computation over a partition of the classes
into groups (``docs/losses.md``): a KL between the group
masses of teacher and student (``high``) plus, per group, a divergence
between the distributions restricted to the group (``within``). KD is one
group, DKD {label} / rest, GDKD teacher top-k / rest, GDKD3 top-1 /
top-2..k / rest. :func:`decoupled_kl` evaluates it for any partition.

Layout: channel-first ``(N, C, L)`` -- a classification batch is
``(N, C, 1)``, a segmentation map ``(N, C, H*W)`` -- and every reduction is
over ``dim=1`` (no permute to ``(N*H*W, C)`` rows, a full copy).

The loss and the closed-form gradient (docs/losses.md, "The gradient") are
computed in one forward; backward only scales the saved gradient. Two
backends give the same numbers: the fused CPU kernel (``native.py``;
float32 and fp16/bf16 logits on CPU) and the pure-torch path
(``indexed.py`` for KD, DKD and top-k partitions, below for explicit
group ids and masks; CUDA,
float64, no kernel), which is sync-free and
``torch.compile(fullgraph=True)``-clean.

This file imports nothing from the OpenMMLab stack.
"""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .indexed import KL_SHARES as _KL_SHARES
from .indexed import indexed_forward, reduce_parts
from .native import Mode, native_forward, native_module
from .partitions import (KNOCKOUT_MAX_K, LabelGroup, TopK, to_compute_dtype,
                         topk_indices, topk_masks)
from .validation import (KL_TYPES, CallConfig, Groups, checks_values,
                         poisoned, validate)
# Added to the log-probabilities outside a group: exp() of it is exactly 0
# in float32 and float64, and it stays finite (no 0 * inf in products).
_OUTSIDE = -1e30


__all__ = ['DecoupledKL', 'decoupled_kl', 'KL_TYPES', 'topk_masks']


class DecoupledKL(NamedTuple):
    """Result of :func:`decoupled_kl`.

    ``loss == loss_weight * (w0 * high + sum_g weights[g] * within[g])``.
    """
    loss: Tensor  #: scalar, fp32 (float64 for float64 inputs), with grad
    high: Tensor  #: detached scalar: mean ``T^2 KL(b_t || b_s)``
    within: Tensor  #: detached ``(G,)``: mean ``T^2 D`` per group (0 if None)


# ---------------------------------------------------------------------------
# The pure-torch path
# ---------------------------------------------------------------------------
def _per_entry(values, masks: Sequence[Optional[Tensor]]):
    """The value of each entry's group, ``(N, C, L)`` (or a broadcastable
    ``(N, 1, L)`` / scalar for one group), from per-row values ``(N, G, L)``
    or per-group constants (a list of G floats): one multiply-add per
    group but the last."""
    if isinstance(values, Tensor):
        last, of = values[:, -1:], (lambda g: values[:, g:g + 1])
    else:
        last, of = values[-1], (lambda g: values[g])
    if masks[0] is None:  # one group
        return last
    if isinstance(values, Tensor):
        out = torch.addcmul(last, masks[0], of(0) - last)
    else:
        out = torch.add(masks[0] * (of(0) - last), last)
    for g in range(1, len(masks) - 1):
        if isinstance(values, Tensor):
            out.addcmul_(masks[g], of(g) - last)
        else:
            out.add_(masks[g], alpha=of(g) - last)
    return out


def _group_sums(x: Tensor, masks: Sequence[Optional[Tensor]],
                scratch: Optional[Tensor] = None) -> Tensor:
    """``(N, G, L)``: the sum of ``x`` over each group's members
    (``scratch``: a buffer like ``x`` to reuse; on CPU a fresh full-size
    tensor costs more in page faults than the multiply)."""
    if masks[0] is None:  # one group
        return x.sum(1, keepdim=True)
    if scratch is None:
        scratch = torch.empty_like(x)
    return torch.stack(
        [torch.mul(x, m, out=scratch).sum(1) for m in masks], 1)


def _group_log_softmax(z: Tensor, masks: Sequence[Optional[Tensor]],
                       outside: Optional[Sequence[Tensor]]
                       ) -> Tuple[Tensor, Tensor]:
    """``log_softmax`` of ``z`` within each group, ``(N, C, L)`` (the
    restricted log-probabilities ``log p^``), and each group's logsumexp
    ``(N, G, L)``.

    Each entry is shifted by its own group's max (``outside`` is 0 in the
    group, -1e30 elsewhere), so no group sum underflows (each holds
    ``exp(0) = 1``) and ``log p^`` near 0 keeps full precision even when
    the group lies far below the row's max.
    """
    if masks[0] is None:  # one group
        lse = torch.logsumexp(z, 1, keepdim=True)
        return z - lse, lse
    scratch = torch.empty_like(z)
    gmax = torch.cat([
        torch.add(z, o, out=scratch).amax(1, keepdim=True) for o in outside
    ], 1)
    shifted = z - _per_entry(gmax, masks)
    exp = torch.exp(shifted, out=scratch)
    log_sums = _group_sums(exp, masks, torch.empty_like(z)).log_()
    return shifted.sub_(_per_entry(log_sums, masks)), gmax + log_sums


def torch_forward(student: Tensor, teacher: Tensor, masks: Sequence[Tensor],
                  config: CallConfig, valid: Optional[Tensor], need_grad: bool
                  ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Loss, parts ``[high, D_0, ..]`` and the gradient w.r.t. ``student``
    (or ``None``), as docs/losses.md writes them.

    Args:
        student, teacher (Tensor): ``(N, C, L)`` logits (fp32 or float64).
        masks: One ``{0, 1}`` ``(N, C, L)`` mask per group (``[None]``: one
            group).
    """
    t = config.temperature
    fwd, rev = _KL_SHARES[config.kl_type]
    if len(masks) == 1:
        masks = [None]
        outside = None
    else:
        outside = [torch.mul(m, -_OUTSIDE).add_(_OUTSIDE) for m in masks]
    lps, lse_s = _group_log_softmax(student / t if t != 1 else student, masks,
                                    outside)
    lpt, lse_t = _group_log_softmax(teacher / t if t != 1 else teacher, masks,
                                    outside)
    del outside
    # Group log-masses log b(g) = lse_g - logsumexp_g' lse_g', (N, G, L).
    log_bs = lse_s - torch.logsumexp(lse_s, 1, keepdim=True)
    log_bt = lse_t - torch.logsumexp(lse_t, 1, keepdim=True)
    bt = log_bt.exp()
    high = (bt * (log_bt - log_bs)).sum(1)  # KL(b_t || b_s), (N, L)
    ps, pt = lps.exp(), lpt.exp()
    log_ratio = lpt.sub_(lps)  # log q^ - log p^ (lpt is no longer needed)
    del lpt
    # Within-group KLs (N, G, L): forward sum_g q^ log(q^/p^), reverse
    # sum_g p^ log(p^/q^); 0 for singleton groups (weight None).
    forward_kl = _group_sums(pt * log_ratio, masks) if fwd else None
    reverse_kl = -_group_sums(ps * log_ratio, masks) if rev else None
    loss, parts, n_valid = reduce_parts(high, forward_kl, reverse_kl,
                                        config, valid)
    group_w = [w or 0.0 for w in config.weights]
    grad = None
    if need_grad:
        # docs/losses.md "The gradient"; member j of group g,
        # r_j = log p^_j - log q^_j:
        # T [w0 p^_j (b_s - b_t) + wf (p^_j - q^_j) + wr p^_j (r_j - R_g)],
        # wf, wr the forward / reverse shares of the group's weight and
        # R_g = KL(p^ || q^) of the group. Per entry:
        # p^ (w0 (b_s - b_t) + wf) - wf q^ - wr p^ (log(q^/p^) + R_g);
        # log(q^/p^) + R_g is formed first: both may be ~1e4 and cancel.
        coef = config.w0 * (log_bs.exp() - bt)
        coef = torch.stack(
            [coef[:, g] + fwd * w for g, w in enumerate(group_w)], 1)
        if rev:
            reverse = log_ratio.add_(_per_entry(reverse_kl, masks)).mul_(ps)
            reverse.mul_(_per_entry([rev * w for w in group_w], masks))
        grad = ps.mul_(_per_entry(coef, masks))
        if fwd:
            coef_q = _per_entry([fwd * w for w in group_w], masks)
            if isinstance(coef_q, Tensor):
                grad.addcmul_(pt, coef_q, value=-1.0)
            else:  # one group
                grad.add_(pt, alpha=-coef_q)
        if rev:
            grad.sub_(reverse)
        scale = config.loss_weight * t / n_valid
        if valid is not None:
            scale = valid.unsqueeze(1).to(grad.dtype) * scale
        grad = grad.mul_(scale)
    return loss, parts, grad


# ---------------------------------------------------------------------------
# Autograd and dispatch
# ---------------------------------------------------------------------------
class _DecoupledKLFunction(torch.autograd.Function):
    """Loss and closed-form gradient in one forward; backward only scales the
    saved gradient. The teacher is a constant (detached by the caller)."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor,
                valid: Optional[Tensor], aux, config: CallConfig):
        need_grad = ctx.needs_input_grad[0]
        s, t = to_compute_dtype(student), to_compute_dtype(teacher)
        if config.native:
            sums, grad = native_forward(
                s, t, valid, config.mode, config.k, aux, config.weights,
                config.w0, config.temperature, _KL_SHARES[config.kl_type],
                config.loss_weight, need_grad)
            parts = torch.tensor(sums, dtype=s.dtype) * config.temperature**2
            group_w = parts.new_tensor([w or 0.0 for w in config.weights])
            loss = config.loss_weight * (config.w0 * parts[0] +
                                         (group_w * parts[1:]).sum())
        elif config.mode == Mode.GROUP_IDS:
            masks = _torch_masks(config, t, aux)
            loss, parts, grad = torch_forward(s, t, masks, config, valid,
                                              need_grad)
        else:
            index, bounds = _torch_index(config, t, aux)
            loss, parts, grad = indexed_forward(s, t, index, bounds, config,
                                                valid, need_grad)
        ctx.input_dtype = student.dtype
        ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(parts)
        return loss, parts

    @staticmethod
    def backward(ctx, grad_loss, grad_parts):
        grad, = ctx.saved_tensors
        if grad is None:  # only the teacher wanted a gradient: it gets none
            return (None, ) * 5
        return _scaled(grad, grad_loss).to(ctx.input_dtype), None, None, \
            None, None


def _scaled(grad: Tensor, grad_loss: Tensor) -> Tensor:
    """``grad * grad_loss`` without a fresh full-size tensor where that is
    safe: on CPU a fresh gradient costs more in page faults than the
    multiply (measured ~20% of a KD/GDKD step at 8x19x128x256 for a unit
    weight, ~10% at 0.4). If the graph is not kept for another backward, the
    saved gradient is handed over as is (a loss summed straight into the
    total gets exactly 1) or scaled in place; autograd may then adopt it as
    ``.grad``, which a retained graph must not allow. Reading ``grad_loss``
    is no device sync on CPU; elsewhere, and while compiling, a plain
    multiply."""
    if grad_loss.device.type != 'cpu' or torch.compiler.is_compiling() \
            or _graph_kept():
        return grad * grad_loss
    return grad if float(grad_loss) == 1.0 else grad.mul_(grad_loss)


def _graph_kept() -> bool:
    """Whether the running backward keeps the graph (``retain_graph``);
    ``True`` when this torch cannot tell (a private torch API)."""
    getter = getattr(torch._C._autograd, '_get_current_graph_task_keep_graph',
                     None)
    return True if getter is None else bool(getter())


def _use_native(student: Tensor, teacher: Tensor, config: CallConfig,
                n_groups: int) -> bool:
    """Whether the fused CPU kernel takes this call: float32 (or fp16/bf16,
    computed in float32) CPU logits and a partition it knows."""
    if torch.compiler.is_compiling():
        return False
    module = native_module()
    if module is None or n_groups > module.MAX_GROUPS or (
            config.mode == Mode.TOPK3 and not config.largest):
        return False  # bottom-1 / bottom-2..k: torch only
    return all(x.device.type == 'cpu' and x.dtype != torch.float64
               for x in (student, teacher))


def _group_ids(masks: Sequence[Tensor], n_groups: int) -> Tensor:
    """``(N, C, L)`` uint8 group ids from the masks of groups 0 .. G-2."""
    ids = torch.full(masks[0].shape, n_groups - 1, dtype=torch.uint8,
                     device=masks[0].device)
    for g in range(len(masks) - 1, -1, -1):
        ids = torch.where(masks[g].bool(), g, ids)
    return ids


def _torch_index(config: CallConfig, teacher: Tensor,
                 aux: Optional[Tensor]) -> Tuple[Optional[Tensor], list]:
    """The small groups' ``(N, K, L)`` classes for the torch path and the
    group bounds in them (:func:`indexed_forward`)."""
    mode = config.mode
    if mode == Mode.WHOLE:
        return None, [0]
    if mode == Mode.LABEL:
        return aux.long().unsqueeze(1), [0, 1]
    # The teacher's top-k by knock-out inside indexed_forward (it also
    # yields the teacher's top values and rest copy); otherwise torch.topk.
    index = config.k if config.largest and \
        config.k <= KNOCKOUT_MAX_K else topk_indices(teacher, config.k,
                                                     config.largest)
    return index, [0, 1, config.k] if mode == Mode.TOPK3 else [0, config.k]


def _torch_masks(config: CallConfig, teacher: Tensor, aux: Tensor) -> list:
    """One ``{0, 1}`` mask per group from ``(N, C, L)`` group ids (the
    other partitions take :func:`indexed_forward`)."""
    return [(aux == g).to(teacher.dtype) for g in range(len(config.weights))]


def decoupled_kl(student: Tensor,
                 teacher: Tensor,
                 *,
                 groups: Groups = None,
                 weights: Sequence[Optional[float]] = (1.0, ),
                 w0: float = 0.0,
                 temperature: float = 1.0,
                 kl_type: str = 'forward',
                 valid: Optional[Tensor] = None,
                 loss_weight: float = 1.0) -> DecoupledKL:
    """Decoupled KL over a class partition, fused loss and gradient.

    Per row, with ``G`` groups, temperature ``T``, masses ``b`` and
    restricted distributions ``p^``, ``q^`` (docs/losses.md, GDKDLoss)::

        T^2 * (w0 * KL(b_t || b_s) + sum_g weights[g] * D(q^_g, p^_g))

    averaged over the valid rows and times ``loss_weight``. ``D`` is the
    forward KL ``KL(q^||p^)``, the reverse ``KL(p^||q^)`` or their mean
    (``kl_type``); the group-mass term is always forward KL.

    Both backends accept and refuse the same inputs: shapes, devices, dtypes
    and numbers raise ``ValueError``; on CPU outside ``torch.compile`` so do
    values (label range, group ids, empty groups, non-finite teacher). On
    CUDA or while compiling, where that would need a host sync, such values
    make the loss NaN instead.

    Args:
        student (Tensor): ``(N, C, L)`` student logits, any float dtype.
        teacher (Tensor): ``(N, C, L)`` teacher logits, a constant (it is
            detached; no gradient flows to it).
        groups: ``None`` for one group (KD); a :class:`TopK` or
            :class:`LabelGroup` partition (groups in the order they
            describe, the rest last); an integer ``(N, C, L)`` tensor of
            group ids in ``[0, G)``; or ``G - 1`` disjoint ``(N, C, L)``
            bool/float masks of groups ``0 .. G-2``, the last group being
            the complement. Every group must be non-empty on every row.
        weights (Sequence[float | None]): Per-group weight of ``D``
            (``G = len(weights)``); ``None`` marks a singleton group (its
            ``D`` is 0, not computed).
        w0 (float): Weight of the group-mass KL.
        temperature (float): ``T > 0``.
        kl_type (str): ``'forward'``, ``'reverse'`` or ``'both'``.
        valid (Tensor, optional): ``(N, L)`` bool, the rows that count.
        loss_weight (float): Global factor.

    Returns:
        DecoupledKL: the loss (fp32, float64 for float64 inputs; with no
        valid row a zero that keeps the graph) and its detached unweighted
        parts (means over valid rows, times ``T^2``).
    """
    config, partition = validate(student, teacher, groups, weights, w0,
                                  temperature, kl_type, valid, loss_weight)
    teacher = teacher.detach()
    n_groups = len(config.weights)
    nan_flag = None
    if not checks_values(student):
        partition, nan_flag = poisoned(partition, config, student.shape[1])
    if isinstance(partition, list):  # explicit masks: one id tensor
        partition = _group_ids(partition, n_groups)
    native = _use_native(student, teacher, config, n_groups)
    config = config._replace(native=native)
    aux = partition if isinstance(partition, Tensor) else None
    if native and aux is not None:
        aux = aux.to(torch.int64 if config.mode == Mode.LABEL else
                      torch.uint8)
    with torch.autocast(student.device.type, enabled=False):
        loss, parts = _DecoupledKLFunction.apply(student, teacher, valid, aux,
                                                 config)
    if nan_flag is not None:
        loss = loss + nan_flag
    return DecoupledKL(loss, parts[0], parts[1:])

