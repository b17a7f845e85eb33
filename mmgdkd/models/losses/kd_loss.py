# Copyright (c) mmgdkd contributors. All rights reserved.
from typing import Optional

import torch.nn as nn
from torch import Tensor

from mmgdkd.registry import register_model
from .functional import decoupled_kl
from .logit_standardization import check_flag, standardize_batch
from .utils import (check_non_negative, check_positive, no_autocast,
                    prepare_logits, report_backend_once)


@register_model
class KDLoss(nn.Module):
    """Vanilla knowledge distillation (Hinton et al., 2015).

    Per row ``T^2 * KL(q || p)`` with ``p = softmax(z_s/T)``,
    ``q = softmax(z_t/T)``; the mean over valid rows times ``loss_weight``.
    It is the one-group case of the decoupled-KL kernel.

    Args:
        temperature (float): ``T``.
        ignore_index (int | None): Label of rows to exclude.
        loss_weight (float): Global factor.
        loss_name (str): Name of the loss in the log.
        logit_standardization (bool): Z-score each row of both logits over
            the classes first (LS, docs/losses.md; pixel-wise for
            segmentation), see
            :mod:`~mmgdkd.models.losses.logit_standardization`.

    Shapes: as :class:`GDKDLoss`; the target is optional.
    """

    #: softmax(z / temperature) over the classes of each row: a teacher
    #: ensemble can be given to it as one teacher's logits (docs/losses.md,
    #: "Teacher ensembles").
    class_softmax = True

    def __init__(self,
                 temperature: float = 4.0,
                 ignore_index: Optional[int] = 255,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_kd',
                 logit_standardization: bool = False) -> None:
        super().__init__()
        self.temperature = check_positive('temperature', temperature)
        self.ignore_index = ignore_index
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self._loss_name = loss_name
        self.logit_standardization = check_flag(
            'logit_standardization', logit_standardization)
        report_backend_once()

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                target: Optional[Tensor] = None) -> Tensor:
        """KD loss, an fp32 scalar.

        Args:
            student_logits (Tensor): ``(N, C)`` or ``(N, C, H, W)``.
            teacher_logits (Tensor): Same ``N, C`` (and number of dims).
            target (Tensor, optional): Labels, used only to drop rows equal
                to ``ignore_index``.
        """
        batch = prepare_logits(student_logits, teacher_logits, target,
                               self.ignore_index)
        if self.logit_standardization:
            with no_autocast(batch.student):
                batch = standardize_batch(batch)
        return decoupled_kl(
            batch.student, batch.teacher, temperature=self.temperature,
            valid=batch.valid, loss_weight=self.loss_weight).loss

    @property
    def loss_name(self) -> str:
        """Name of the loss in the log (MMSeg convention)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return f'T={self.temperature}, loss_weight={self.loss_weight}'
