# Copyright (c) mmgdkd contributors. All rights reserved.
"""Logit standardization (Sun et al., CVPR 2024); docs/losses.md, "Logit
standardization".

Each row of logits is z-scored over its classes before a distillation loss:
``z' = (z - mean(z)) / (eps + std(z))`` with the unbiased std and
``eps = 1e-7`` (the authors' LSKD / LS-GDKD convention). The gradient flows
through the mean and the std. The transform is monotone per row, so the
teacher's top-k / bottom-k partitions are unchanged (the authors take them
from the raw logits); GDKD's ``'adaptive'`` k is computed on the
standardized logits.
"""
import math
from typing import NamedTuple, TypeVar

import torch
from torch import Tensor

#: The authors' epsilon, added to the std (not under the square root).
LS_EPS = 1e-7

BatchT = TypeVar('BatchT', bound=NamedTuple)


def standardize_logits(logits: Tensor,
                       dim: int = 1,
                       eps: float = LS_EPS) -> Tensor:
    """Z-score ``logits`` over the class dimension ``dim``.

    Args:
        logits (Tensor): Any shape with ``C >= 2`` entries along ``dim``,
            e.g. ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)`` (pixel-wise:
            each pixel's ``C`` logits are one row).
        dim (int): The class dimension.
        eps (float): Added to the unbiased std.

    Returns:
        Tensor: Same shape; fp32 for fp16/bf16/fp32 input, float64 stays.
    """
    num_classes = logits.shape[dim]
    if num_classes < 2:
        raise ValueError('logit standardization needs at least 2 classes '
                         f'(the unbiased std of one value is undefined), got '
                         f'C={num_classes} in shape {tuple(logits.shape)}')
    if logits.dtype != torch.float64:
        logits = logits.float()
    mean = logits.mean(dim, keepdim=True)
    std = logits.std(dim, keepdim=True)
    return (logits - mean) / (eps + std)


def check_flag(name: str, value: bool) -> bool:
    """``value``; ValueError unless it is a bool (a string such as
    ``'False'`` would otherwise switch the option on)."""
    if not isinstance(value, bool):
        raise ValueError(f'{name} must be True or False, got {value!r}')
    return value


def standardized_span_bound(num_classes: int) -> float:
    """Upper bound of ``max - min`` of standardized logits over a row.

    By Samuelson's inequality ``|z_i - mean| <= (C - 1) / sqrt(C) * std``
    (unbiased std), so the span of a row is at most twice that. Known
    without a pass over the data (no host sync).
    """
    return 2.0 * (num_classes - 1) / math.sqrt(num_classes)


def standardize_batch(batch: BatchT) -> BatchT:
    """A loss's prepared batch with both logits standardized over classes.

    ``batch`` is the named tuple of
    :func:`~mmgdkd.models.losses.utils.prepare_logits` (fields ``student``
    and ``teacher``, ``(N, C, L)``). Labels and the valid mask are
    unchanged.
    """
    return batch._replace(
        student=standardize_logits(batch.student, dim=1),
        teacher=standardize_logits(batch.teacher, dim=1))
