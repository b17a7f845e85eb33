# Copyright (c) mmgdkd contributors. All rights reserved.
from typing import Optional

import torch.nn as nn
from torch import Tensor

from mmgdkd.registry import register_model
from .functional import decoupled_kl
from .utils import check_non_negative, check_positive, prepare_logits


@register_model
class CWDLoss(nn.Module):
    """Channel-wise distillation (Shu et al., 2021) for dense predictions.

    Each class channel is a distribution over the ``H*W`` positions,
    ``softmax(z[n, c] / tau)``; the loss is
    ``tau^2 * sum_{n,c} KL(teacher || student) / (N * C)`` times
    ``loss_weight`` (MMRazor's ``ChannelWiseDivergence``; there ``tau=1``,
    ``loss_weight=5``). It is KD with positions as classes, so it runs on the
    same kernel over the ``(N*C, H*W, 1)`` view.

    Args:
        temperature (float): ``tau``.
        loss_weight (float): Global factor.
        loss_name (str): Name of the loss in the log.

    Shapes: logits ``(N, C, H, W)``; a teacher of another ``H, W`` is resized
    bilinearly. The target is ignored.
    """

    #: The softmax runs over spatial positions, not classes: averaged
    #: class probabilities of a teacher ensemble do not apply (spec §10).
    class_softmax = False

    def __init__(self,
                 temperature: float = 1.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_cwd') -> None:
        super().__init__()
        self.temperature = check_positive('temperature', temperature)
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self._loss_name = loss_name

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                target: Optional[Tensor] = None) -> Tensor:
        """CWD loss, an fp32 scalar.

        Args:
            student_logits (Tensor): ``(N, C, H, W)``.
            teacher_logits (Tensor): ``(N, C, H', W')``.
            target: Ignored (accepted for a uniform loss signature).
        """
        if student_logits.dim() != 4:
            raise ValueError('CWDLoss needs (N, C, H, W) logits, got shape '
                             f'{tuple(student_logits.shape)}')
        batch = prepare_logits(student_logits, teacher_logits)
        n, c, length = batch.student.shape
        loss, _ = decoupled_kl(
            batch.student.reshape(n * c, length, 1),
            batch.teacher.reshape(n * c, length, 1), None, 0.0, [1.0],
            self.temperature, 'forward', None, self.loss_weight)
        return loss

    @property
    def loss_name(self) -> str:
        """Name of the loss in the log (MMSeg convention)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return f'tau={self.temperature}, loss_weight={self.loss_weight}'
