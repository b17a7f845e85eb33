# Copyright (c) mmgdkd contributors. All rights reserved.
from typing import Dict, Optional

import torch.nn as nn
from torch import Tensor

from mmgdkd.registry import register_model
from .functional import LabelGroup, decoupled_kl
from .logit_standardization import check_flag, standardize_batch
from .utils import (check_non_negative, check_positive, no_autocast,
                    prepare_logits, report_backend_once)


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
        loss_name (str): Name of the loss in the log.
        logit_standardization (bool): Z-score each row of both logits over
            the classes first (LS, docs/losses.md; pixel-wise for
            segmentation), see
            :mod:`~mmgdkd.models.losses.logit_standardization`.

    ``last_components`` holds detached fp32 ``tckd`` and ``nckd`` (unweighted
    means times ``T^2``): ``loss == loss_weight*(alpha*tckd + beta*nckd)``.

    Shapes: as :class:`GDKDLoss`; the target is required and its values must
    be in ``[0, C)`` or ``ignore_index``.
    """

    #: softmax(z / temperature) over the classes of each row: a teacher
    #: ensemble can be given to it as one teacher's logits (docs/losses.md,
    #: "Teacher ensembles").
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
        self.last_components: Dict[str, Tensor] = {}
        self.logit_standardization = check_flag(
            'logit_standardization', logit_standardization)
        report_backend_once()

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
        if self.logit_standardization:
            with no_autocast(batch.student):
                batch = standardize_batch(batch)
        labels = batch.labels
        if batch.valid is not None:
            labels = labels.masked_fill(~batch.valid, 0)  # any valid class
        # {label} is a singleton: no within term (weight None). Labels
        # outside [0, C) are refused by decoupled_kl.
        result = decoupled_kl(
            batch.student, batch.teacher, groups=LabelGroup(labels),
            weights=(None, self.beta), w0=self.alpha,
            temperature=self.temperature, valid=batch.valid,
            loss_weight=self.loss_weight)
        self.last_components = dict(tckd=result.high,
                                    nckd=result.within[1])
        return result.loss

    @property
    def loss_name(self) -> str:
        """Name of the loss in the log (MMSeg convention)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, beta={self.beta}, '
                f'T={self.temperature}, loss_weight={self.loss_weight}')
