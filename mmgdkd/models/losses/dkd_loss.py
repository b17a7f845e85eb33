# Copyright (c) mmgdkd contributors. All rights reserved.
from typing import Dict, Optional

import torch.nn as nn
from torch import Tensor

from mmgdkd.registry import register_model
from .functional import LabelGroup, decoupled_kl
from .logit_standardization import check_flag, standardize_batch
from .utils import (check_non_negative, check_positive, no_autocast,
                    prepare_logits)


@register_model
class DKDLoss(nn.Module):
    """Decoupled Knowledge Distillation (Zhao et al., 2022).

    Groups by the label ``y``: ``{y}`` and the rest. Per row::

        alpha * T^2 * KL([q_y, 1-q_y] || [p_y, 1-p_y])      (TCKD)
      + beta  * T^2 * KL(q^|rest || p^|rest)                 (NCKD)

    averaged over the valid rows, times ``loss_weight``. NCKD is computed
    exactly; mdistiller approximates it by subtracting 1000 from the target
    logit.

    Args:
        alpha (float): TCKD weight.
        beta (float): NCKD weight.
        temperature (float): ``T``.
        ignore_index (int | None): Label of rows to exclude.
        loss_weight (float): Global factor.
        logit_standardization (bool): Z-score each row of both logits over
            the classes first (LS, docs/losses.md; pixel-wise for
            segmentation), see
            :mod:`~mmgdkd.models.losses.logit_standardization`.
        loss_name (str): Name of the loss in the log.

    ``last_components`` holds detached fp32 ``tckd`` and ``nckd`` (unweighted
    means times ``T^2``): ``loss == loss_weight*(alpha*tckd + beta*nckd)``.

    Shapes: as :class:`GDKDLoss`; the target is required and its values must
    be in ``[0, C)`` or ``ignore_index``.
    """

    #: softmax(z / temperature) over the classes of each row: a teacher
    #: ensemble can be given to it as one teacher's logits (spec §10).
    class_softmax = True

    #: DKD groups by the label: distillers must pass hard labels.
    requires_target = True

    def __init__(self,
                 alpha: float = 1.0,
                 beta: float = 8.0,
                 temperature: float = 4.0,
                 ignore_index: Optional[int] = 255,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_dkd',
                 logit_standardization: bool = False) -> None:
        super().__init__()
        self.alpha = check_non_negative('alpha', alpha)
        self.beta = check_non_negative('beta', beta)
        self.temperature = check_positive('temperature', temperature)
        self.ignore_index = ignore_index
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self._loss_name = loss_name
        self.logit_standardization = check_flag(
            'logit_standardization', logit_standardization)
        self.last_components: Dict[str, Tensor] = {}

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                target: Optional[Tensor] = None) -> Tensor:
        """DKD loss, an fp32 scalar.

        Args:
            student_logits (Tensor): ``(N, C)`` or ``(N, C, H, W)``.
            teacher_logits (Tensor): Same ``N, C`` (and number of dims).
            target (Tensor): Labels ``(N,)`` or ``(N, H', W')``; required.
        """
        if target is None:
            raise ValueError('DKDLoss needs the target (labels), got None')
        batch = prepare_logits(student_logits, teacher_logits, target,
                               self.ignore_index)
        num_classes = batch.student.shape[1]
        labels = batch.labels
        if batch.valid is not None:
            labels = labels.masked_fill(~batch.valid, 0)  # any valid class
        wrong = (labels < 0) | (labels >= num_classes)
        if bool(wrong.any()):
            raise ValueError(
                f'target values must be in [0, {num_classes}) or '
                f'ignore_index={self.ignore_index}, got '
                f'{int(labels[wrong][0])}')
        with no_autocast(batch.student):
            if self.logit_standardization:
                batch = standardize_batch(batch)
            # {label} is a singleton: no within term (weight None).
            loss, parts = decoupled_kl(
                batch.student, batch.teacher, LabelGroup(labels), self.alpha,
                [None, self.beta], self.temperature, 'forward', batch.valid,
                self.loss_weight)
        self.last_components = dict(tckd=parts[0], nckd=parts[2])
        return loss

    @property
    def loss_name(self) -> str:
        """Name of the loss in the log (MMSeg convention)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, beta={self.beta}, '
                f'T={self.temperature}, loss_weight={self.loss_weight}')
