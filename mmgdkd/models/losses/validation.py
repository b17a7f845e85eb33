# Copyright (c) mmgdkd contributors. All rights reserved.
"""Validation of :func:`~mmgdkd.models.losses.decoupled.decoupled_kl`: one
place for both backends, so that they accept and refuse exactly the same
inputs, with a ``ValueError`` naming the offending value.

This file imports nothing from the OpenMMLab stack.
"""
import math
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .native import Mode
from .partitions import LabelGroup, TopK

KL_TYPES = ('forward', 'reverse', 'both')
Groups = Union[None, TopK, LabelGroup, Tensor, Sequence[Tensor]]


class CallConfig(NamedTuple):
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


def checks_values(x: Tensor) -> bool:
    """Whether value checks may read tensors now: on CPU, in eager mode.
    Elsewhere raising would need a host sync (CUDA) or break the graph
    (``torch.compile``); bad values then make the loss NaN instead."""
    return x.device.type == 'cpu' and not torch.compiler.is_compiling()


def validate(student, teacher, groups: Groups, weights, w0, temperature,
              kl_type, valid, loss_weight) -> Tuple[CallConfig, object]:
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
        if checks_values(partition) and partition.numel():
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
    if mode == Mode.GROUP_IDS and checks_values(student):
        _check_group_values(partition, n_groups)
    check_finite_teacher(teacher)
    largest = not isinstance(groups, TopK) or bool(groups.largest)
    config = CallConfig(mode, k, largest, weights, _number('w0', w0),
                     temperature,
                     kl_type, _number('loss_weight', loss_weight), False)
    return config, partition


def check_finite_teacher(teacher: Tensor) -> None:
    """ValueError if the teacher logits hold NaN or inf (the partition would
    be garbage); only where values may be read (:func:`checks_values`),
    elsewhere they make the loss NaN. One ``aminmax`` pass (NaN propagates
    through min and max): ``isfinite(t).all()`` costs more on CPU."""
    if checks_values(teacher) and teacher.numel():
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


def poisoned(partition, config: CallConfig, n_classes: int):
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


