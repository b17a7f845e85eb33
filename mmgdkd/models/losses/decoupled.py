# Copyright (c) mmgdkd contributors. All rights reserved.
"""The decoupled KL behind every logit-distillation loss.

KD, DKD, GDKD and GDKD3 are one computation over a partition of the classes
into groups (spec sections 1-2, ``docs/losses.md``): a KL between the group
masses of teacher and student (``high``) plus, per group, a divergence
between the distributions restricted to the group (``within``). KD is one
group, DKD {label} / rest, GDKD teacher top-k / rest, GDKD3 top-1 /
top-2..k / rest. :func:`decoupled_kl` evaluates it for any partition.

Layout: channel-first ``(N, C, L)`` -- a classification batch is
``(N, C, 1)``, a segmentation map ``(N, C, H*W)`` -- and every reduction is
over ``dim=1`` (no permute to ``(N*H*W, C)`` rows, a full copy).

The loss and the closed-form gradient of spec section 3 are computed in one
forward; backward only scales the saved gradient. Two backends give the same
numbers: the fused CPU kernel (``native.py``; float32 and fp16/bf16 logits
on CPU) and the pure-torch path below (CUDA, float64, no kernel), which is
sync-free and ``torch.compile(fullgraph=True)``-clean.

This file imports nothing from the OpenMMLab stack.
"""
import math
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .native import Mode, native_forward, native_module
from .partitions import (LabelGroup, TopK, label_mask, to_compute_dtype,
                         topk_masks)

KL_TYPES = ('forward', 'reverse', 'both')
# (share of forward KL, share of reverse KL) in the within-group divergence.
_KL_SHARES = {'forward': (1.0, 0.0), 'reverse': (0.0, 1.0), 'both': (0.5, 0.5)}
# Added to the log-probabilities outside a group: exp() of it is exactly 0
# in float32 and float64, and it stays finite (no 0 * inf in products).
_OUTSIDE = -1e30

Groups = Union[None, TopK, LabelGroup, Tensor, Sequence[Tensor]]

__all__ = ['DecoupledKL', 'decoupled_kl', 'KL_TYPES', 'topk_masks']


class DecoupledKL(NamedTuple):
    """Result of :func:`decoupled_kl`.

    ``loss == loss_weight * (w0 * high + sum_g weights[g] * within[g])``.
    """
    loss: Tensor  #: scalar, fp32 (float64 for float64 inputs), with grad
    high: Tensor  #: detached scalar: mean ``T^2 KL(b_t || b_s)``
    within: Tensor  #: detached ``(G,)``: mean ``T^2 D`` per group (0 if None)


class _Config(NamedTuple):
    """Python constants of one call (hashable, so ``torch.compile`` treats
    them as constants)."""
    mode: Mode
    k: int
    largest: bool
    weights: Tuple[Optional[float], ...]
    w0: float
    temperature: float
    kl_type: str
    loss_weight: float
    native: bool


# ---------------------------------------------------------------------------
# Validation: one place for both backends
# ---------------------------------------------------------------------------
def _number(name: str, value, minimum: Optional[float] = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and (minimum is None or value >= minimum)
    if not ok:
        bound = '' if minimum is None else f' >= {minimum}'
        raise ValueError(f'{name} must be a finite number{bound}, got '
                         f'{value!r}')
    return float(value)


def _check_tensor(name: str, x, shape: Tuple[int, ...], device: torch.device,
                  kind: str) -> None:
    """Type, shape, device and dtype kind (``'float'``, ``'int'``,
    ``'bool'``, ``'int_or_bool'`` or ``'mask'``) of an auxiliary tensor."""
    if not isinstance(x, Tensor):
        raise ValueError(f'{name} must be a tensor, got {type(x).__name__}')
    if tuple(x.shape) != shape:
        raise ValueError(f'{name} must have shape {shape}, got '
                         f'{tuple(x.shape)}')
    if x.device != device:
        raise ValueError(f'{name} is on {x.device}, the logits on {device}')
    is_int = not x.is_floating_point() and not x.is_complex() \
        and x.dtype != torch.bool
    ok = dict(float=x.is_floating_point(), int=is_int,
              bool=x.dtype == torch.bool,
              mask=x.is_floating_point() or x.dtype == torch.bool)[kind]
    if not ok:
        article = dict(float='a floating-point', int='an integer',
                       bool='a bool', mask='a bool or float')[kind]
        raise ValueError(f'{name} must be {article} tensor, got {x.dtype}')


def _checks_values(x: Tensor) -> bool:
    """Whether value checks may read tensors now: on CPU, in eager mode.
    Elsewhere raising would need a host sync (CUDA) or break the graph
    (``torch.compile``); bad values then make the loss NaN instead."""
    return x.device.type == 'cpu' and not torch.compiler.is_compiling()


def _validate(student, teacher, groups: Groups, weights, w0, temperature,
              kl_type, valid, loss_weight) -> Tuple[_Config, object]:
    """Check every argument; the call's constants and its partition
    (``None``, :class:`TopK`, labels or group ids tensor, or mask list)."""
    for name, x in (('student', student), ('teacher', teacher)):
        if not isinstance(x, Tensor) or not x.is_floating_point() \
                or x.dim() != 3:
            raise ValueError(
                f'{name} logits must be a floating-point (N, C, L) tensor, '
                f'got {getattr(x, "dtype", type(x).__name__)} of shape '
                f'{tuple(getattr(x, "shape", ()))}')
    if teacher.shape != student.shape:
        raise ValueError(f'teacher logits {tuple(teacher.shape)} and student '
                         f'logits {tuple(student.shape)} differ in shape')
    if teacher.device != student.device:
        raise ValueError(f'teacher logits are on {teacher.device}, student '
                         f'logits on {student.device}')
    n, c, length = student.shape
    if c < 2:
        raise ValueError(f'need C >= 2 classes, got C={c}')
    if kl_type not in KL_TYPES:
        raise ValueError(f'kl_type must be one of {KL_TYPES}, got '
                         f'{kl_type!r}')
    if isinstance(weights, (str, bytes)) or not isinstance(
            weights, Sequence) or not weights:
        raise ValueError(f'weights must be a non-empty sequence, got '
                         f'{weights!r}')
    weights = tuple(None if w is None else _number(f'weights[{g}]', w)
                    for g, w in enumerate(weights))
    temperature = _number('temperature', temperature)
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if valid is not None:
        _check_tensor('valid', valid, (n, length), student.device, 'bool')

    mode, k, partition = Mode.WHOLE, 0, groups
    if groups is None:
        n_groups = 1
    elif isinstance(groups, TopK):
        if isinstance(groups.k, bool) or not isinstance(groups.k, int) or \
                not (2 if groups.split_top1 else 1) <= groups.k < c:
            raise ValueError(
                f'TopK k={groups.k!r} must be an int in '
                f'[{2 if groups.split_top1 else 1}, C={c})')
        n_groups, k = (3 if groups.split_top1 else 2), groups.k
        mode = Mode.TOPK3 if groups.split_top1 else (
            Mode.TOPK if groups.largest else Mode.BOTTOMK)
    elif isinstance(groups, LabelGroup):
        _check_tensor('LabelGroup labels', groups.labels, (n, length),
                      student.device, 'int')
        n_groups, mode, partition = 2, Mode.LABEL, groups.labels
        if _checks_values(partition) and partition.numel():
            lo, hi = torch.aminmax(partition)
            if lo < 0 or hi >= c:
                raise ValueError(
                    f'LabelGroup labels must be in [0, {c}) (remap ignored '
                    f'rows first), got {int(lo if lo < 0 else hi)}')
    elif isinstance(groups, Tensor):
        _check_tensor('group ids', groups, (n, c, length), student.device,
                      'int')
        n_groups, mode = len(weights), Mode.GROUP_IDS
    elif isinstance(groups, Sequence) and not isinstance(groups, str):
        for g, m in enumerate(groups):
            _check_tensor(f'groups[{g}]', m, (n, c, length), student.device,
                          'mask')
        n_groups, mode = len(groups) + 1, Mode.GROUP_IDS
        partition = list(groups)
    else:
        raise ValueError('groups must be None, TopK, LabelGroup, a group-id '
                         'tensor or a list of masks, got '
                         f'{type(groups).__name__}')
    if n_groups != len(weights):
        raise ValueError(f'{n_groups} groups but {len(weights)} weights')
    if mode == Mode.GROUP_IDS and _checks_values(student):
        _check_group_values(partition, n_groups)
    check_finite_teacher(teacher)
    largest = not isinstance(groups, TopK) or bool(groups.largest)
    config = _Config(mode, k, largest, weights, _number('w0', w0),
                     temperature,
                     kl_type, _number('loss_weight', loss_weight), False)
    return config, partition


def check_finite_teacher(teacher: Tensor) -> None:
    """ValueError if the teacher logits hold NaN or inf (the partition would
    be garbage); only where values may be read (:func:`_checks_values`),
    elsewhere they make the loss NaN. One ``aminmax`` pass (NaN propagates
    through min and max): ``isfinite(t).all()`` costs more on CPU."""
    if _checks_values(teacher) and teacher.numel():
        lo, hi = torch.aminmax(teacher.detach())
        if not (torch.isfinite(lo) and torch.isfinite(hi)):
            raise ValueError(f'teacher logits must be finite, got '
                             f'min={float(lo)}, max={float(hi)}')


def _check_group_values(partition, n_groups: int) -> None:
    """Group ids in ``[0, G)`` / disjoint 0-1 masks, and no group empty on
    a row (an empty group has mass 0: ``log 0``)."""
    if isinstance(partition, Tensor):
        if partition.numel():
            lo, hi = torch.aminmax(partition)
            if lo < 0 or hi >= n_groups:
                raise ValueError(f'group ids must be in [0, {n_groups}), '
                                 f'got {int(lo if lo < 0 else hi)}')
        counts = [(partition == g).sum(1) for g in range(n_groups)]
    else:
        total = 0
        for g, m in enumerate(partition):
            m = m.double()
            if not bool(((m == 0) | (m == 1)).all()):
                raise ValueError(f'groups[{g}] must hold only 0 and 1')
            total = total + m
        if not bool((total <= 1).all()):
            raise ValueError('group masks must be disjoint')
        counts = [m.sum(1) for m in partition] + [(1 - total).sum(1)]
    for g, count in enumerate(counts):
        if count.numel() and not bool((count > 0).all()):
            raise ValueError(f'group {g} is empty on some row: every group '
                             'needs at least one class per row')


# ---------------------------------------------------------------------------
# The pure-torch path
# ---------------------------------------------------------------------------
def _group_log_mass(log_p: Tensor, mask: Tensor) -> Tensor:
    """``log b(G)``, ``(N, 1, L)``: logsumexp of ``log_p`` over the group,
    never ``log`` of a sum of probabilities (which underflows)."""
    return torch.logsumexp(log_p + (1.0 - mask) * _OUTSIDE, 1, keepdim=True)


def torch_forward(student: Tensor, teacher: Tensor, masks: Sequence[Tensor],
                  config: _Config, valid: Optional[Tensor], need_grad: bool
                  ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """Loss, parts ``[high, D_0, ..]`` and the gradient w.r.t. ``student``
    (or ``None``), as the spec writes them.

    Args:
        student, teacher (Tensor): ``(N, C, L)`` logits (fp32 or float64).
        masks: One ``{0, 1}`` ``(N, C, L)`` mask per group.
    """
    t = config.temperature
    fwd, rev = _KL_SHARES[config.kl_type]
    ls = torch.log_softmax(student / t, 1)
    lt = torch.log_softmax(teacher / t, 1)
    if len(masks) == 1:  # KD: one group, mass 1
        log_bs = log_bt = ls.new_zeros(ls.shape[0], 1, ls.shape[2])
        lps, lpt = ls, lt
    else:
        log_bs = torch.cat([_group_log_mass(ls, m) for m in masks], 1)
        log_bt = torch.cat([_group_log_mass(lt, m) for m in masks], 1)
        # Restricted log-probabilities log p^_j = log p_j - log b(g(j)).
        lps = ls - sum(m * log_bs[:, g:g + 1] for g, m in enumerate(masks))
        lpt = lt - sum(m * log_bt[:, g:g + 1] for g, m in enumerate(masks))
    bt = log_bt.exp()
    high = (bt * (log_bt - log_bs)).sum(1)  # KL(b_t || b_s), (N, L)
    ps, pt = lps.exp(), lpt.exp()
    log_ratio = lpt - lps  # log q^ - log p^
    active = [w is not None for w in config.weights]
    forward_kl, reverse_kl = [], []  # per group, (N, 1, L)
    for m, on in zip(masks, active):
        one = len(masks) == 1
        zero = high.new_zeros(high.shape[0], 1, high.shape[1])
        forward_kl.append((pt * log_ratio if one else m * pt * log_ratio).sum(
            1, keepdim=True) if on and fwd else zero)
        reverse_kl.append(-(ps * log_ratio if one else m * ps * log_ratio).sum(
            1, keepdim=True) if on and rev else zero)
    within = [fwd * f + rev * r for f, r in zip(forward_kl, reverse_kl)]
    rows = torch.cat([high.unsqueeze(1)] + within, 1)  # (N, 1 + G, L)
    if valid is None:
        n_valid = float(rows.shape[0] * rows.shape[2])
    else:
        n_valid = valid.sum().to(rows.dtype).clamp(min=1)
        rows = torch.where(valid.unsqueeze(1), rows, 0.0)
    parts = rows.sum((0, 2)) * (t * t) / n_valid
    group_w = [w or 0.0 for w in config.weights]
    loss = config.loss_weight * (config.w0 * parts[0] + sum(
        w * parts[1 + g] for g, w in enumerate(group_w)))
    grad = None
    if need_grad:
        # Spec section 3, member j of group g, r_j = log p^_j - log q^_j:
        # T [w0 p^_j (b_s - b_t) + wf (p^_j - q^_j) + wr p^_j (r_j - R_g)],
        # wf, wr the forward / reverse shares of the group's weight and
        # R_g = KL(p^ || q^) of the group.
        bs = log_bs.exp()
        coef_p, coef_q, coef_r = 0.0, 0.0, 0.0
        for g, m in enumerate(masks):
            wf, wr = fwd * group_w[g], rev * group_w[g]
            a = config.w0 * (bs[:, g:g + 1] - bt[:, g:g + 1]) + wf
            if wr:
                a = a - wr * reverse_kl[g]
            if m is None:  # one group
                coef_p, coef_q, coef_r = a, wf, wr
                continue
            coef_p = coef_p + m * a
            if wf:
                coef_q = coef_q + m * wf
            if wr:
                coef_r = coef_r + m * wr
        grad = ps * coef_p - pt * coef_q
        if rev:
            grad = grad - ps * log_ratio * coef_r
        scale = config.loss_weight * t / n_valid
        if valid is not None:
            scale = valid.unsqueeze(1).to(grad.dtype) * scale
        grad = grad * scale
    return loss, parts, grad


# ---------------------------------------------------------------------------
# Autograd and dispatch
# ---------------------------------------------------------------------------
class _DecoupledKLFunction(torch.autograd.Function):
    """Loss and closed-form gradient in one forward; backward only scales the
    saved gradient. The teacher is a constant (detached by the caller)."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor,
                valid: Optional[Tensor], aux, config: _Config):
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
        else:
            masks = _torch_masks(config, t, aux)
            loss, parts, grad = torch_forward(s, t, masks, config, valid,
                                              need_grad)
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
    """``grad * grad_loss``, without a fresh full-size tensor where that is
    safe: on CPU a fresh gradient costs more in page faults than the
    multiply. A loss summed straight into the total gets exactly 1: the
    saved gradient is handed over as is (autograd never writes into an
    incoming gradient, and clones it rather than steal it while the graph
    holds it). Otherwise, if the graph is not kept for another backward,
    the saved gradient is scaled in place. Reading ``grad_loss`` is no
    device sync on CPU; elsewhere, and while compiling, plain multiply."""
    if grad_loss.device.type != 'cpu' or torch.compiler.is_compiling():
        return grad * grad_loss
    if float(grad_loss) == 1.0:
        return grad
    if not _graph_kept():
        return grad.mul_(grad_loss)
    return grad * grad_loss


def _graph_kept() -> bool:
    """Whether the running backward keeps the graph (``retain_graph``);
    ``True`` when this torch cannot tell (a private torch API)."""
    getter = getattr(torch._C._autograd, '_get_current_graph_task_keep_graph',
                     None)
    return True if getter is None else bool(getter())


def _use_native(student: Tensor, teacher: Tensor, config: _Config,
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


def _torch_masks(config: _Config, teacher: Tensor,
                 aux: Optional[Tensor]) -> list:
    """One ``{0, 1}`` mask per group for the torch path (``[None]`` for a
    single group, which needs none)."""
    mode, dtype = config.mode, teacher.dtype
    if mode == Mode.WHOLE:
        return [None]
    if mode == Mode.GROUP_IDS:
        return [(aux == g).to(dtype) for g in range(len(config.weights))]
    if mode == Mode.LABEL:
        masks = [label_mask(aux, teacher.shape[1], dtype)]
    else:
        top, top1 = topk_masks(teacher, config.k, config.largest,
                               mode == Mode.TOPK3)
        masks = [top1, top - top1] if mode == Mode.TOPK3 else [top]
    rest = 1.0 - masks[0]
    for m in masks[1:]:
        rest = rest - m
    return masks + [rest]


def _poisoned(partition, config: _Config, n_classes: int):
    """Where values cannot be checked (CUDA, compile): out-of-range labels
    or group ids are clamped into range, and a NaN flag is returned to be
    added to the loss, so that a bad input is never a silent answer."""
    if isinstance(partition, Tensor):
        high = n_classes if config.mode == Mode.LABEL else len(
            config.weights)
        bad = ((partition < 0) | (partition >= high)).any()
        return partition.clamp(0, high - 1), torch.where(
            bad, float('nan'), 0.0)
    return partition, None


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
    restricted distributions ``p^``, ``q^`` (spec section 1)::

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
    config, partition = _validate(student, teacher, groups, weights, w0,
                                  temperature, kl_type, valid, loss_weight)
    teacher = teacher.detach()
    n_groups = len(config.weights)
    nan_flag = None
    if not _checks_values(student):
        partition, nan_flag = _poisoned(partition, config, student.shape[1])
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

