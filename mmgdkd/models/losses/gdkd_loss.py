# Copyright (c) mmgdkd contributors. All rights reserved.
from typing import Dict, Optional, Tuple, Union

import torch.nn as nn
from torch import Tensor

from mmgdkd.registry import register_model
from .decoupled import KL_TYPES, decoupled_kl
from .logit_standardization import check_flag, standardize_batch
from .partitions import TopK, adaptive_group_ids
from .utils import (check_below_classes, check_choice, check_int,
                    check_non_negative, check_positive, no_autocast,
                    prepare_logits, report_backend_once)

STRATEGIES = ('topk', 'adaptive', 'topk3', 'worst')


@register_model
class GDKDLoss(nn.Module):
    """Generalized Decoupled Knowledge Distillation loss.

    The classes are split by the teacher (``strategy``) into a top group U1
    and the rest U2; per row (sample or pixel), with temperature ``T``::

        T^2 * (w0 * KL(b_t || b_s) + w1 * D(q^|U1, p^|U1)
                                   + w2 * D(q^|U2, p^|U2))

    ``b`` are the group masses, ``p^``/``q^`` the student/teacher
    distributions restricted to a group and ``D`` the ``kl_type`` divergence.
    The value is the mean over valid rows times ``loss_weight``.

    Args:
        k (int): Size of the top group (``1 <= k < C``; ``k >= 2`` for
            ``'topk3'``). Segmentation default 3, classification 5.
        w0 (float): Weight of the group-mass KL (``high``).
        w1 (float): Weight inside the top group (``low_top``).
        w2 (float): Weight inside the other classes (``low_other``).
        temperature (float): Softmax temperature ``T``.
        kl_type (str): ``'forward'`` (``KL(teacher||student)``),
            ``'reverse'`` or ``'both'`` (their mean); within-group terms only.
        strategy (str): ``'topk'``: the teacher's top-k classes.
            ``'adaptive'``: per-row k from the teacher's softened
            probabilities (ratio rule, see
            :func:`~mmgdkd.models.losses.functional.adaptive_k`).
            ``'topk3'``: GDKD3, groups top-1 / top-2..k / rest; ``w1``
            weights top-2..k, ``w2`` the rest, no within-top-1 term.
            ``'worst'``: the teacher's bottom-k (ablation).
        ignore_index (int | None): Label of rows to exclude.
        loss_weight (float): Global factor.
        ratio (float): Jump ratio of ``'adaptive'``.
        max_k (int, optional): Cap on the adaptive k; ``None`` means ``C-1``.
        loss_name (str): Name of the loss in the log.
        logit_standardization (bool): Z-score each row of both logits over
            the classes first (LS, docs/losses.md; pixel-wise for
            segmentation), see
            :mod:`~mmgdkd.models.losses.logit_standardization`.

    After each forward, ``last_components`` holds detached fp32 scalars
    ``high``, ``low_top``, ``low_other``: the unweighted means over valid
    rows (times ``T^2``, without ``w0/w1/w2`` or ``loss_weight``), so that
    ``loss == loss_weight * (w0*high + w1*low_top + w2*low_other)``.

    Shapes: logits ``(N, C)`` or ``(N, C, H, W)`` (a different teacher
    ``H, W`` is resized bilinearly); optional target ``(N,)`` or
    ``(N, H', W')`` (nearest-resized). The teacher gets no gradient.
    """

    #: softmax(z / temperature) over the classes of each row: a teacher
    #: ensemble can be given to it as one teacher's logits (docs/losses.md,
    #: "Teacher ensembles").
    class_softmax = True

    def __init__(self,
                 k: int = 3,
                 w0: float = 1.0,
                 w1: float = 1.0,
                 w2: float = 2.0,
                 temperature: float = 1.0,
                 kl_type: str = 'forward',
                 strategy: str = 'topk',
                 ignore_index: Optional[int] = 255,
                 loss_weight: float = 1.0,
                 ratio: float = 2.0,
                 max_k: Optional[int] = None,
                 loss_name: str = 'loss_gdkd',
                 logit_standardization: bool = False) -> None:
        super().__init__()
        self.strategy = check_choice('strategy', strategy, STRATEGIES)
        self.k = check_int('k', k, 2 if strategy == 'topk3' else 1)
        self.w0 = check_non_negative('w0', w0)
        self.w1 = check_non_negative('w1', w1)
        self.w2 = check_non_negative('w2', w2)
        self.temperature = check_positive('temperature', temperature)
        self.kl_type = check_choice('kl_type', kl_type, KL_TYPES)
        self.ignore_index = ignore_index
        self.loss_weight = check_non_negative('loss_weight', loss_weight)
        self.ratio = check_positive('ratio', ratio)
        self.max_k = None if max_k is None else check_int('max_k', max_k)
        self._loss_name = loss_name
        self.last_components: Dict[str, Tensor] = {}
        self.logit_standardization = check_flag(
            'logit_standardization', logit_standardization)
        report_backend_once()

    def check_num_classes(self, num_classes: int) -> None:
        """ValueError unless the options fit ``C`` classes (the distillers
        call this at build time; ``forward`` checks the logits too)."""
        if self.strategy == 'adaptive':
            if self.max_k is not None:
                check_below_classes('max_k', self.max_k, num_classes)
        else:
            check_below_classes('k', self.k, num_classes)

    def _partition(
        self, teacher: Tensor
    ) -> Tuple[Union[TopK, Tensor], Tuple[Optional[float], ...]]:
        """Partition of the teacher ``(N, C, L)`` (a :class:`TopK`, or group
        ids for ``'adaptive'``) and the per-group weights."""
        num_classes = teacher.shape[1]
        if self.strategy == 'adaptive':
            max_k = num_classes - 1 if self.max_k is None else self.max_k
            check_below_classes('max_k', max_k, num_classes)
            ids = adaptive_group_ids(teacher, self.temperature, self.ratio,
                                     max_k)
            return ids, (self.w1, self.w2)
        check_below_classes('k', self.k, num_classes)
        if self.strategy == 'topk3':
            # top-1 is a singleton: no within term (weight None).
            return TopK(self.k, split_top1=True), (None, self.w1, self.w2)
        partition = TopK(self.k, largest=self.strategy != 'worst')
        # k = 1: the top group is a singleton, low_top is exactly 0.
        return partition, (self.w1 if self.k > 1 else None, self.w2)

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                target: Optional[Tensor] = None) -> Tensor:
        """GDKD loss, an fp32 scalar.

        Args:
            student_logits (Tensor): ``(N, C)`` or ``(N, C, H, W)``.
            teacher_logits (Tensor): Same ``N, C`` (and number of dims).
            target (Tensor, optional): Labels, used only to drop rows equal
                to ``ignore_index``; ``None`` counts every row.
        """
        batch = prepare_logits(student_logits, teacher_logits, target,
                               self.ignore_index)
        if self.logit_standardization:
            with no_autocast(batch.student):
                batch = standardize_batch(batch)
        partition, weights = self._partition(batch.teacher)
        result = decoupled_kl(
            batch.student, batch.teacher, groups=partition, weights=weights,
            w0=self.w0, temperature=self.temperature, kl_type=self.kl_type,
            valid=batch.valid, loss_weight=self.loss_weight)
        # within = [(top-1,) top group, rest]
        self.last_components = dict(
            high=result.high, low_top=result.within[-2],
            low_other=result.within[-1])
        return result.loss

    @property
    def loss_name(self) -> str:
        """Name of the loss in the log (MMSeg convention)."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'strategy={self.strategy}, k={self.k}, w0={self.w0}, '
                f'w1={self.w1}, w2={self.w2}, T={self.temperature}, '
                f'kl_type={self.kl_type}, loss_weight={self.loss_weight}')
