# Copyright (c) mmgdkd contributors. All rights reserved.
"""Class partitions of the decoupled KL: who goes in which group.

A partition splits the ``C`` classes of every row into ``G`` groups: the
teacher's top-k and the rest (GDKD), top-1 / top-2..k / rest (GDKD3), the
label and the rest (DKD), a per-row adaptive top-k, or any explicit group
ids. The torch path works on float ``{0, 1}`` masks, one per group; the
native kernel forms the fixed partitions itself.

Every function here is sync-free and ``torch.compile(fullgraph=True)``-
clean: no ``.item()``, no data-dependent Python branches, no ``nonzero``.

This file imports nothing from the OpenMMLab stack.
"""
from typing import NamedTuple, Optional, Tuple

import torch
from torch import Tensor


class TopK(NamedTuple):
    """Partition by the teacher: its ``k`` largest classes (smallest if not
    ``largest``) and the rest; with ``split_top1`` the first of them is a
    group of its own (GDKD3: top-1 / top-2..k / rest). Every row gets
    exactly ``k`` members, ties included (see :func:`topk_indices`)."""
    k: int
    largest: bool = True
    split_top1: bool = False


class LabelGroup(NamedTuple):
    """Partition by the label (DKD): ``{label}`` and the rest. ``labels``
    is an ``(N, L)`` integer tensor in ``[0, C)`` (remap ignored rows
    first)."""
    labels: Tensor


def to_compute_dtype(x: Tensor) -> Tensor:
    """fp32 for fp16/bf16/fp32 inputs; float64 stays (for gradcheck)."""
    return x if x.dtype == torch.float64 else x.float()


def topk_indices(logits: Tensor, k: int, largest: bool = True) -> Tensor:
    """``(N, k, L)`` indices of each row's ``k`` largest (smallest) classes
    of ``(N, C, L)`` logits, best first. Exact ties are resolved in
    ``torch.topk``'s own order: deterministic (the same input gives the
    same partition), though not always the lower class index that the
    native kernel takes; an int64 key that would order them so cost more
    than the top-k itself on CPU."""
    return torch.topk(logits, k, dim=1, largest=largest).indices


def topk_masks(logits: Tensor,
               k: int,
               largest: bool = True,
               with_top1: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
    """Float ``{0, 1}`` masks of each row's ``k`` largest (smallest) classes.

    Args:
        logits (Tensor): ``(N, C, L)`` teacher logits.
        k (int): Group size, ``1 <= k <= C``.
        largest (bool): ``False`` selects the ``k`` smallest (bottom-k).
        with_top1 (bool): Also return the mask of the first of them.

    Returns:
        tuple[Tensor, Tensor | None]: ``(N, C, L)`` masks (compute dtype)
        of the top-k and of the top-1 (or ``None``); exactly ``k`` (one)
        members per row, ties included.
    """
    idx = topk_indices(logits, k, largest)
    zeros = torch.zeros_like(to_compute_dtype(logits))
    top = zeros.scatter(1, idx, 1.0)
    top1 = zeros.scatter(1, idx[:, :1], 1.0) if with_top1 else None
    return top, top1


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
    return k.clamp(1, max_k), order


def adaptive_group_ids(logits: Tensor, temperature: float, ratio: float,
                       max_k: int) -> Tensor:
    """``(N, C, L)`` uint8 group ids of the adaptive top-k partition
    (:func:`adaptive_k`): 0 for each row's top-k classes, 1 for the rest;
    ties are broken by sort order, so each row has exactly its ``k``
    members."""
    k, order = adaptive_k(logits, temperature, ratio, max_k)
    c = logits.shape[1]
    rank = torch.arange(c, device=logits.device).view(1, c, 1)
    rest = (rank < c - k).to(torch.uint8)  # positions in ascending order
    return torch.empty_like(rest).scatter_(1, order, rest)


def adaptive_topk_mask(logits: Tensor, temperature: float, ratio: float,
                       max_k: int) -> Tensor:
    """Float ``{0, 1}`` ``(N, C, L)`` mask of each row's adaptive top-k
    classes (see :func:`adaptive_group_ids`)."""
    ids = adaptive_group_ids(logits, temperature, ratio, max_k)
    return (ids == 0).to(to_compute_dtype(logits).dtype)


def label_mask(labels: Tensor, num_classes: int,
               dtype: torch.dtype = torch.float32) -> Tensor:
    """Float one-hot ``(N, C, L)`` mask of ``labels`` ``(N, L)`` (DKD's
    target group). Labels must be in ``[0, C)``."""
    n, length = labels.shape
    mask = torch.zeros(
        n, num_classes, length, device=labels.device, dtype=dtype)
    return mask.scatter_(1, labels.long().unsqueeze(1), 1.0)

