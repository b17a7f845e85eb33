# Copyright (c) mmgdkd contributors. All rights reserved.
"""Argument checks and shape handling shared by the mmgdkd losses."""
from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .native import native_status
from .partitions import to_compute_dtype


def check_positive(name: str, value: float) -> float:
    """``value`` as float; ValueError unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not value > 0 or value == float('inf'):
        raise ValueError(f'{name} must be a finite number > 0, got {value!r}')
    return float(value)


def check_non_negative(name: str, value: float) -> float:
    """``value`` as float; ValueError unless it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not value >= 0 or value == float('inf'):
        raise ValueError(
            f'{name} must be a finite number >= 0, got {value!r}')
    return float(value)


def check_int(name: str, value: int, minimum: int = 1) -> int:
    """``value``; ValueError unless it is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value!r}')
    return value


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """``value``; ValueError unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(
            f'{name} must be one of {tuple(choices)}, got {value!r}')
    return value


def check_below_classes(name: str, value: int, num_classes: int) -> None:
    """ValueError unless ``value < C``: a group of all C classes leaves the
    other group empty (log 0)."""
    if value >= num_classes:
        raise ValueError(f'{name}={value} must be < the number of classes '
                         f'C={num_classes}')


def no_autocast(tensor: Tensor) -> torch.autocast:
    """Context that disables autocast on ``tensor``'s device (losses are
    computed in fp32; docs/losses.md, "Validation and mixed precision")."""
    return torch.autocast(tensor.device.type, enabled=False)


def report_backend_once() -> None:
    """Log once per process which backend the losses use (a silent
    fallback to the slower pure-torch path would otherwise go unnoticed)."""
    global _reported
    if _reported:
        return
    _reported = True
    from mmengine.logging import print_log
    print_log(f'mmgdkd losses: {native_status()}', logger='current')


_reported = False


def flatten_logits(student: Tensor,
                   teacher: Tensor) -> Tuple[Tensor, Tensor, Tuple[int, ...]]:
    """Channel-first views ``(N, C, L)`` of a logit pair.

    Args:
        student (Tensor): ``(N, C)`` or ``(N, C, H, W)``.
        teacher (Tensor): Same ``N``, ``C`` and number of dims. If its
            ``(H, W)`` differs, it is resized bilinearly (``align_corners=
            False``) to the student's.

    Returns:
        tuple: student ``(N, C, L)``, teacher ``(N, C, L)`` (``L = 1`` or
        ``H*W``) and the student's spatial size (``()`` or ``(H, W)``).
    """
    for name, logits in (('student', student), ('teacher', teacher)):
        if logits.dim() not in (2, 4):
            raise ValueError(
                f'{name} logits must be (N, C) or (N, C, H, W), got shape '
                f'{tuple(logits.shape)}')
    if teacher.dim() != student.dim() or teacher.shape[:2] != \
            student.shape[:2]:
        raise ValueError(
            f'teacher logits {tuple(teacher.shape)} and student logits '
            f'{tuple(student.shape)} must agree in N, C and number of dims')
    spatial = tuple(student.shape[2:])
    if teacher.shape[2:] != student.shape[2:]:
        teacher = F.interpolate(
            teacher, size=spatial, mode='bilinear', align_corners=False)
    n, c = student.shape[:2]
    return student.reshape(n, c, -1), teacher.reshape(n, c, -1), spatial


def flatten_target(target: Tensor, num_rows: int,
                   spatial: Tuple[int, ...]) -> Tensor:
    """Labels as ``(N, L)`` int64, nearest-resized to the logits' size.

    Args:
        target (Tensor): ``(N,)`` for ``(N, C)`` logits; ``(N, H', W')`` or
            ``(N, 1, H', W')`` for ``(N, C, H, W)`` logits (any ``H', W'``).
        num_rows (int): ``N``.
        spatial (tuple): ``()`` or the logits' ``(H, W)``.
    """
    shape = tuple(target.shape)
    if not spatial:
        ok = shape == (num_rows, )
    else:
        if target.dim() == 4 and shape[1] == 1:
            target = target[:, 0]
        ok = target.dim() == 3 and target.shape[0] == num_rows
    if not ok or target.is_floating_point() or target.is_complex():
        expected = '(N,)' if not spatial else "(N, H', W') or (N, 1, H', W')"
        raise ValueError(
            f'target must be an integer tensor of shape {expected} with '
            f'N={num_rows}, got {target.dtype} of shape {shape}')
    if spatial and tuple(target.shape[1:]) != spatial:
        target = F.interpolate(
            target[:, None].float(), size=spatial, mode='nearest')[:, 0]
    return target.reshape(num_rows, -1).long()


class LogitBatch(NamedTuple):
    """Flattened, validated inputs of a loss (see :func:`prepare_logits`)."""
    student: Tensor  # (N, C, L)
    teacher: Tensor  # (N, C, L), fp32 (float64 stays), detached
    labels: Optional[Tensor]  # (N, L) int64
    valid: Optional[Tensor]  # (N, L) bool, None = every row counts


def prepare_logits(student: Tensor,
                   teacher: Tensor,
                   target: Optional[Tensor] = None,
                   ignore_index: Optional[int] = None) -> LogitBatch:
    """Flatten a logit pair, resize teacher and target; no host sync.

    Values (a non-finite teacher, label ranges) are checked by
    :func:`~mmgdkd.models.losses.decoupled.decoupled_kl`. Student logits
    are not checked: an overflowing fp16 student under AMP must reach the
    grad scaler as inf, which then skips the step.
    """
    student, teacher, spatial = flatten_logits(student, teacher)
    teacher = to_compute_dtype(teacher.detach())
    labels = valid = None
    if target is not None:
        labels = flatten_target(target, student.shape[0], spatial)
        if ignore_index is not None:
            valid = labels != ignore_index
    return LogitBatch(student, teacher, labels, valid)
