# Copyright (c) mmgdkd contributors. All rights reserved.
from typing import Dict, Optional

import torch
import torch.nn as nn
from torch import Tensor

from mmgdkd.registry import register_model
from .utils import (check_non_negative, check_positive, no_autocast,
                    prepare_logits)
from .validation import check_finite_teacher


def _pearson(a: Tensor, b: Tensor, dim, weight: Optional[Tensor],
             count: Tensor, eps: float) -> Tensor:
    """Pearson correlation of ``a`` and ``b`` along ``dim``, the reference
    convention ``cos(a - mean a, b - mean b)`` with ``eps`` added to the
    product of the norms. ``weight`` (0/1, broadcastable) drops entries:
    they leave the means and the sums."""
    if weight is None:
        a = a - a.mean(dim, keepdim=True)
        b = b - b.mean(dim, keepdim=True)
    else:
        a = (a - (a * weight).sum(dim, keepdim=True) / count) * weight
        b = (b - (b * weight).sum(dim, keepdim=True) / count) * weight
    dot = (a * b).sum(dim)
    return dot / (a.norm(dim=dim) * b.norm(dim=dim) + eps)


@register_model
class DISTLoss(nn.Module):
    """DIST (Huang et al., NeurIPS 2022): distillation from a stronger
    teacher by Pearson relations of the softened predictions.

    With ``p = softmax(z / tau)`` over the classes for both models and rows
    ``i`` (samples, or pixels for segmentation) and classes ``j``::

        inter = mean_i (1 - pearson(p_s[i, :], p_t[i, :]))
        intra = mean_j (1 - pearson(p_s[:, j], p_t[:, j]))
        loss  = loss_weight * tau^2 * (beta * inter + gamma * intra)

    The intra-class relation correlates each class's predictions across all
    rows of the batch (all pixels of all images for segmentation, as the
    GDKD authors' segmentation code, ``ZaberKo/seg-gdkd``, which has no
    ``tau^2`` factor: the same loss at its ``tau=1``).
    ``pearson(a, b) = cos(a - mean a, b - mean b)`` with ``eps`` added to
    the product of the norms, as the reference code (``hunto/DIST_KD``).

    Published settings: ImageNet ``beta=gamma=1, tau=1`` (DIST_KD's loss
    weight 2 is then ``loss_weight=2``); CIFAR-100 (the GDKD authors'
    baseline) ``beta=gamma=2, tau=4``; Cityscapes ``beta=gamma=1, tau=1``,
    weight 1 on the main head and 0.4 on the auxiliary head (seg-gdkd).

    Args:
        beta (float): Weight of the inter-class relation.
        gamma (float): Weight of the intra-class relation.
        temperature (float): ``tau``.
        ignore_index (int | None): Rows whose label equals it are left out of
            both relations. ``None`` (default, as the reference) uses every
            row.
        loss_weight (float): Global factor.
        eps (float): Added to the product of the norms (reference: 1e-8).
        loss_name (str): Name of the loss in the log.

    ``last_components`` holds detached fp32 ``inter`` and ``intra`` (times
    ``tau^2``): ``loss == loss_weight * (beta*inter + gamma*intra)``.

    Shapes: logits ``(N, C)`` or ``(N, C, H, W)`` (a teacher of another
    ``H, W`` is resized bilinearly); optional target ``(N,)`` or
    ``(N, H', W')``. The teacher gets no gradient.
    """

    #: softmax(z / temperature) over the classes of each row: a teacher
    #: ensemble can be given to it as one teacher's logits (docs/losses.md,
    #: "Teacher ensembles").
    class_softmax = True

    def __init__(self,
                 beta: float = 1.0,
                 gamma: float = 1.0,
                 temperature: float = 1.0,
                 ignore_index: Optional[int] = None,
                 loss_weight: float = 1.0,
                 eps: float = 1e-8,
                 loss_name: str = 'loss_dist') -> None:
        super().__init__()
        self.beta = check_non_negative('beta', beta)
        self.gamma = check_non_negative('gamma', gamma)
        self.temperature = check_positive('temperature', temperature)
        self.ignore_index = ignore_index
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self.eps = check_non_negative('eps', eps)
        self._loss_name = loss_name
        self.last_components: Dict[str, Tensor] = {}

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                target: Optional[Tensor] = None) -> Tensor:
        """DIST loss, an fp32 scalar (float64 for float64 inputs).

        Args:
            student_logits (Tensor): ``(N, C)`` or ``(N, C, H, W)``.
            teacher_logits (Tensor): Same ``N, C`` (and number of dims).
            target (Tensor, optional): Labels, used only to drop rows equal
                to ``ignore_index``.
        """
        batch = prepare_logits(student_logits, teacher_logits, target,
                               self.ignore_index)
        check_finite_teacher(batch.teacher)
        with no_autocast(batch.student):
            student = batch.student
            if student.dtype != torch.float64:
                student = student.float()
            # channel-first (N, C, L): classes on dim 1, rows on dims 0, 2
            p_s = torch.softmax(student / self.temperature, dim=1)
            p_t = torch.softmax(batch.teacher / self.temperature, dim=1)
            row_r = _pearson(p_s, p_t, 1, None, None, self.eps)  # (N, L)
            if batch.valid is None:
                inter = (1 - row_r).mean()
                intra = (1 - _pearson(p_s, p_t, (0, 2), None, None,
                                      self.eps)).mean()
            else:
                weight = batch.valid[:, None].to(p_s.dtype)  # (N, 1, L)
                count = weight.sum()
                # no valid row: both relations are 0 and the graph is kept
                safe = count.clamp(min=1)
                inter = ((1 - row_r) * weight[:, 0]).sum() / safe
                intra = (1 - _pearson(p_s, p_t, (0, 2), weight, safe,
                                      self.eps)).mean() * (count > 0)
            scale = self.temperature**2
            inter, intra = inter * scale, intra * scale
            loss = self.loss_weight * (self.beta * inter + self.gamma * intra)
        self.last_components = dict(
            inter=inter.detach().float(), intra=intra.detach().float())
        return loss

    @property
    def loss_name(self) -> str:
        """Name of the loss in the log (MMSeg convention)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'beta={self.beta}, gamma={self.gamma}, '
                f'tau={self.temperature}, loss_weight={self.loss_weight}')
