# Copyright (c) mmgdkd contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmgdkd.registry import register_model
from .validation import check_finite_teacher
from .utils import (check_non_negative, check_positive, prepare_logits,
                    report_backend_once)


class _ChannelKL(torch.autograd.Function):
    """``sum_rows KL(softmax(t) || softmax(s))`` over ``(R, P)`` rows, in
    float64, with the closed-form gradient ``softmax(s) - softmax(t)``
    computed in the same forward (autograd through a float64 log_softmax
    pair would cost twice as much)."""

    @staticmethod
    def forward(ctx, student: Tensor, teacher: Tensor) -> Tensor:
        log_s = F.log_softmax(student.double(), dim=1)
        log_t = F.log_softmax(teacher.double(), dim=1)
        q = log_t.exp()
        kl = (q * (log_t - log_s)).sum()
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward((log_s.exp_() - q).to(student.dtype))
        return kl

    @staticmethod
    def backward(ctx, grad_kl: Tensor):
        grad, = ctx.saved_tensors
        return grad * grad_kl.to(grad.dtype), None


@register_model
class CWDLoss(nn.Module):
    """Channel-wise distillation (Shu et al., 2021) for dense predictions.

    Each class channel is a distribution over the ``H*W`` positions,
    ``softmax(z[n, c] / tau)``; the loss is
    ``tau^2 * sum_{n,c} KL(teacher || student) / (N * C)`` times
    ``loss_weight`` (MMRazor's ``ChannelWiseDivergence``; there ``tau=1``,
    ``loss_weight=5``).

    It is computed as written, on the contiguous ``(N*C, H*W)`` rows: a
    ``log_softmax`` pair, ``sum q (log q - log p)`` and the gradient
    ``tau (p - q)``, in float64. In float32 the log-normalisers of ``H*W``
    positions (values near ``log(H*W)``) are rounded to ~1e-6, up to 1e-5
    of a small KL (near-uniform maps, large ``tau``); float64 keeps the
    relative error below 1e-9. The maps are at logit resolution, so this
    costs about twice a float32 autograd version on CPU. The loss is fp32
    (float64 for float64 inputs), the gradient in the student's dtype.

    Args:
        temperature (float): ``tau``.
        loss_weight (float): Global factor.
        loss_name (str): Name of the loss in the log.

    Shapes: logits ``(N, C, H, W)``; a teacher of another ``H, W`` is resized
    bilinearly. The target is ignored.
    """

    #: The softmax runs over spatial positions, not classes: averaged
    #: class probabilities of a teacher ensemble do not apply
    #: (docs/losses.md, "Teacher ensembles").
    class_softmax = False

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
            kl = _ChannelKL.apply(
                batch.student.reshape(n * c, length) / tau,
                batch.teacher.reshape(n * c, length) / tau)
        out_dtype = torch.float64 if student_logits.dtype == torch.float64 \
            else torch.float32
        return (kl * (self.loss_weight * tau * tau / (n * c))).to(out_dtype)

    @property
    def loss_name(self) -> str:
        """Name of the loss in the log (MMSeg convention)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return f'tau={self.temperature}, loss_weight={self.loss_weight}'
