# Copyright (c) mmgdkd contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmgdkd.registry import register_model
from .decoupled import check_finite_teacher
from .utils import (check_non_negative, check_positive, prepare_logits,
                    report_backend_once)


@register_model
class CWDLoss(nn.Module):
    """Channel-wise distillation (Shu et al., 2021) for dense predictions.

    Each class channel is a distribution over the ``H*W`` positions,
    ``softmax(z[n, c] / tau)``; the loss is
    ``tau^2 * sum_{n,c} KL(teacher || student) / (N * C)`` times
    ``loss_weight`` (MMRazor's ``ChannelWiseDivergence``; there ``tau=1``,
    ``loss_weight=5``).

    It is computed as written, on the contiguous ``(N*C, H*W)`` rows: a
    ``log_softmax`` pair and ``kl_div`` with autograd, in fp32 (float64
    stays). torch's summation is pairwise, so the sums over ``H*W``
    positions keep float32 accuracy (a relative error of ~1e-7 against
    float64 at 1x19x256x512).

    Args:
        temperature (float): ``tau``.
        loss_weight (float): Global factor.
        loss_name (str): Name of the loss in the log.

    Shapes: logits ``(N, C, H, W)``; a teacher of another ``H, W`` is resized
    bilinearly. The target is ignored.
    """

    def __init__(self,
                 temperature: float = 1.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_cwd') -> None:
        super().__init__()
        self.temperature = check_positive('temperature', temperature)
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self._loss_name = loss_name
        report_backend_once()

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
        check_finite_teacher(batch.teacher)
        n, c, length = batch.student.shape
        tau = self.temperature
        with torch.autocast(batch.student.device.type, enabled=False):
            student = batch.student.reshape(n * c, length)
            if student.dtype != torch.float64:
                student = student.float()
            log_s = F.log_softmax(student / tau, dim=1)
            log_t = F.log_softmax(
                batch.teacher.reshape(n * c, length) / tau, dim=1)
            kl = F.kl_div(log_s, log_t, reduction='sum', log_target=True)
        return kl * (self.loss_weight * tau * tau / (n * c))

    @property
    def loss_name(self) -> str:
        """Name of the loss in the log (MMSeg convention)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return f'tau={self.temperature}, loss_weight={self.loss_weight}'
