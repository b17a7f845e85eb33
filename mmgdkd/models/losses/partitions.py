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


def scalar_source(index: Tensor, value: float, like: Tensor) -> Tensor:
    """``value`` (dtype and device of ``like``) in the shape of ``index``,
    as a scatter source without a buffer of that size: an expanded scalar
    (a scalar-valued ``scatter_`` is ~3x slower on CPU)."""
    return like.new_full((1, 1, 1), value).expand(index.shape)


# Up to this k, top-k by k max passes beats ``torch.topk`` over ``dim=1`` on
# CPU (k=3 at 8x19x32768: ~20 ms against ~60 ms, one thread).
KNOCKOUT_MAX_K = 4


def topk_indices(logits: Tensor, k: int, largest: bool = True) -> Tensor:
    """``(N, k, L)`` indices of each row's ``k`` largest (smallest) classes
    of ``(N, C, L)`` logits, best first; of tied classes the lowest index
    first, as a stable sort and the native kernel take them.

    For small ``k``: ``k`` rounds of the row max, its lowest-index
    position (the max of ``(C - c) * [z_c == max]``) and a knock-out to
    ``-inf``; otherwise ``torch.topk``, whose order of exact ties is its own
    (deterministic, not always the lowest index).
    """
    if k > KNOCKOUT_MAX_K:
        return torch.topk(logits, k, dim=1, largest=largest).indices
    # + 0.0 makes -0.0 equal to +0.0 for == below, as they compare in topk.
    z = logits + 0.0 if largest else logits.neg()
    return knock_out_topk(z, k, knock_last=False)[0]


def knock_out_topk(z: Tensor, k: int, knock_last: bool = True,
                   scratch: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """The ``k`` largest classes of ``(N, C, L)`` ``z``, lowest index first
    among ties, by ``k`` rounds of the row max, its lowest-index position
    (the max of ``(C - c) * [z_c == max]``) and a knock-out to ``-inf`` in
    place on ``z`` (the last round's too if ``knock_last``).

    Returns:
        tuple[Tensor, Tensor]: ``(N, k, L)`` int64 indices and the values.
    """
    c = z.shape[1]
    rank = torch.arange(c, 0, -1, device=z.device, dtype=z.dtype)
    rank = rank.view(1, c, 1)
    if scratch is None and not torch.compiler.is_compiling():
        # A fresh buffer per round costs page faults on CPU; the compiled
        # graph fuses these ops instead.
        scratch = torch.empty_like(z)
    indices, values = [], []
    for i in range(k):
        top = z.amax(1, keepdim=True)
        if scratch is None:
            key = torch.where(z == top, rank, 0.0)
        else:
            key = torch.eq(z, top, out=scratch).mul_(rank)
        # A NaN row has no hit (key 0): clamp to a valid index; its loss is
        # NaN anyway.
        index = (c - key.amax(1, keepdim=True)).long().clamp_(max=c - 1)
        indices.append(index)
        values.append(top)
        if knock_last or i < k - 1:
            z.scatter_(1, index, scalar_source(index, -float('inf'), z))
    return torch.cat(indices, 1), torch.cat(values, 1)


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

