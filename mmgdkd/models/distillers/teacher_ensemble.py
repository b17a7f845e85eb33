# Copyright (c) mmgdkd contributors. All rights reserved.
"""Several teachers for one student: weights, checks and the two modes.

``'prob'`` (docs/losses.md, "Teacher ensembles"): for each loss, the
teachers' class probabilities at that loss's temperature ``T`` are averaged
with the weights, and the loss is given one teacher whose logits

    z_ens = T * log(sum_i w_i * softmax(z_i / T))

satisfy ``softmax(z_ens / T) == sum_i w_i softmax(z_i / T)`` exactly, so
the losses never learn about ensembles (GDKD then partitions by the
ensemble's top-k). ``'loss'``: the weighted sum of the per-teacher losses.

The distillers run the teachers (and resize their logits to the
student's); this module only combines the logits.
"""
import math
from numbers import Real
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

ENSEMBLE_MODES = ('prob', 'loss')


def teacher_label(index: int, num_teachers: int) -> str:
    """Name of the ``index``-th (0-based) teacher in logs, keys and errors:
    ``'teacher'`` alone, ``'teacher1'``, ``'teacher2'``... in an ensemble."""
    return 'teacher' if num_teachers == 1 else f'teacher{index + 1}'


def expand_teachers(teacher, teacher_ckpt,
                    teacher_weights: Optional[Sequence[float]]
                    ) -> Tuple[list, List[Optional[str]], Tuple[float, ...]]:
    """Normalise the teacher arguments of a distiller to parallel lists.

    Args:
        teacher: One model spec, or a list/tuple of them (an ensemble).
        teacher_ckpt: ``None``, one path (single teacher only) or a list of
            paths/``None`` of the same length as ``teacher``. ``None`` means
            no checkpoint for any teacher.
        teacher_weights: ``None`` (equal weights) or one positive number per
            teacher; normalised to sum to 1.

    Returns:
        tuple: teacher specs, checkpoints (one per teacher) and weights.
    """
    specs = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    num = len(specs)
    if num == 0:
        raise ValueError('teacher must be a model spec or a non-empty list '
                         'of model specs, got an empty list')
    if teacher_ckpt is None:
        ckpts = [None] * num
    elif isinstance(teacher_ckpt, (list, tuple)):
        ckpts = list(teacher_ckpt)
    elif num == 1:
        ckpts = [teacher_ckpt]
    else:
        raise ValueError(f'{num} teachers need teacher_ckpt as a list of '
                         f'{num} paths (or None entries), got '
                         f'{teacher_ckpt!r}')
    if len(ckpts) != num:
        raise ValueError(f'teacher_ckpt has {len(ckpts)} entries but there '
                         f'are {num} teachers: {ckpts!r}')
    for ckpt in ckpts:
        if ckpt is not None and not isinstance(ckpt, str):
            raise ValueError(f'each teacher_ckpt must be a path, URL or '
                             f'None, got {ckpt!r}')
    return specs, ckpts, normalise_weights(teacher_weights, num)


def normalise_weights(weights: Optional[Sequence[float]],
                      num_teachers: int) -> Tuple[float, ...]:
    """Positive finite weights, one per teacher, scaled to sum to 1."""
    if weights is None:
        return (1. / num_teachers, ) * num_teachers
    if isinstance(weights, Real) or not isinstance(weights, (list, tuple)):
        raise ValueError(f'teacher_weights must be a list of {num_teachers} '
                         f'positive numbers, got {weights!r}')
    if len(weights) != num_teachers:
        raise ValueError(f'teacher_weights has {len(weights)} entries but '
                         f'there are {num_teachers} teachers: {weights!r}')
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, Real) or \
                not 0 < weight < float('inf'):
            raise ValueError('teacher_weights must be finite numbers > 0, '
                             f'got {weight!r} in {list(weights)!r}')
    # scaled by the largest first: a plain sum of huge weights overflows to
    # inf, and every weight would become 0
    largest = float(max(weights))
    scaled = [float(w) / largest for w in weights]
    total = math.fsum(scaled)
    return tuple(w / total for w in scaled)


def class_softmax_temperature(name: str, loss: nn.Module) -> float:
    """The temperature ``T`` of ``loss``'s softmax over the classes.

    A loss states that it applies ``softmax(z / temperature)`` over the
    class axis of each row by the class attribute ``class_softmax = True``
    (KD, DKD, GDKD, DIST); CWD's softmax runs over spatial positions
    (``class_softmax = False``), and logit standardization z-scores the
    teacher's logits first, so in both cases no single teacher's logits can
    stand in for an average of class probabilities.

    Raises:
        ValueError: The loss does not declare a class softmax, standardizes
            the logits, or has no positive ``temperature``.
    """
    kind = type(loss).__name__
    flag = getattr(loss, 'class_softmax', None)
    if flag is not True:
        why = ('applies its softmax over spatial positions, not classes'
               if flag is False else
               'does not declare a softmax over classes (class attribute '
               '`class_softmax = True` and a `temperature`)')
        raise ValueError(
            f"{name} ({kind}) {why}, so teacher_ensemble='prob' (averaged "
            "class probabilities) cannot feed it; use teacher_ensemble="
            "'loss' (the weighted sum of per-teacher losses)")
    if getattr(loss, 'logit_standardization', False):
        raise ValueError(
            f"{name} ({kind}) has logit_standardization=True: it z-scores "
            "the teacher's logits before its softmax, so no single teacher's "
            "logits give the averaged class probabilities of "
            "teacher_ensemble='prob'; use teacher_ensemble='loss' (the "
            "weighted sum of per-teacher losses)")
    temperature = getattr(loss, 'temperature', None)
    if isinstance(temperature, bool) or not isinstance(temperature, Real) \
            or not 0 < temperature < float('inf'):
        raise ValueError(f'{name} ({kind}) declares class_softmax but its '
                         f'temperature is {temperature!r}, not a number > 0')
    return float(temperature)


def ensemble_logits(logits: Sequence[Tensor], weights: Sequence[float],
                    temperature: float) -> Tensor:
    """Logits of the weighted mixture of the teachers' class distributions.

    ``T * log(sum_i w_i softmax(z_i / T))`` over dim 1, computed as a
    logsumexp: with ``l_i = log_softmax(z_i / T)`` and ``m = max_i l_i``,
    ``T * (m + log(sum_i w_i exp(l_i - m)))``. Every ``exp`` is at most 1
    and the sum is at least the smallest weight, so nothing overflows or
    takes ``log 0``; identical teachers give exactly ``T * l`` (the sum is
    ``sum_i w_i * 1``). Weights are Python floats: no host sync. The
    inputs are detached: the in-place arithmetic would otherwise break a
    backward through them, and a teacher gets no gradient anyway.

    Args:
        logits: Per teacher ``(N, C)`` or ``(N, C, H, W)``, equal shapes.
        weights: One weight per teacher, summing to 1.
        temperature: ``T > 0``.

    Returns:
        Tensor: ``(N, C[, H, W])`` in fp32 (float64 stays), no gradient.
    """
    with torch.autocast(logits[0].device.type, enabled=False):
        log_probs = [
            F.log_softmax(
                (z if z.dtype == torch.float64 else z.float()).detach() /
                temperature,
                dim=1) for z in logits
        ]
        peak = log_probs[0]
        for log_prob in log_probs[1:]:
            peak = torch.maximum(peak, log_prob)
        total = None
        for weight, log_prob in zip(weights, log_probs):
            term = torch.exp(log_prob - peak).mul_(weight)
            total = term if total is None else total.add_(term)
        return (peak + total.log_()).mul_(temperature)


class EnsembleTerm(NamedTuple):
    """One distillation loss on one tap, for all teachers."""
    value: Tensor  # scalar, with gradient to the student
    components: Dict[str, Tensor]  # detached, as the loss's last_components
    per_teacher: Dict[str, Tensor]  # label -> detached loss ('loss' mode)


class TeacherEnsemble:
    """Turns the teachers' logits into each loss's value.

    Args:
        weights: One weight per teacher, summing to 1.
        mode: ``'prob'`` or ``'loss'`` (see the module docstring).
    """

    def __init__(self, weights: Sequence[float], mode: str = 'prob') -> None:
        if mode not in ENSEMBLE_MODES:
            raise ValueError(f'teacher_ensemble must be one of '
                             f'{ENSEMBLE_MODES}, got {mode!r}')
        self.weights = tuple(weights)
        self.mode = mode

    def __len__(self) -> int:
        return len(self.weights)

    def check_losses(self, losses: Dict[str, nn.Module]) -> None:
        """Build-time check: in ``'prob'`` mode every loss of an ensemble
        must have a class softmax (see :func:`class_softmax_temperature`)."""
        if len(self) > 1 and self.mode == 'prob':
            for name, loss in losses.items():
                class_softmax_temperature(name, loss)

    def term(self,
             loss: nn.Module,
             student: Tensor,
             teachers: Sequence[Tensor],
             target: Optional[Tensor],
             cache: Optional[dict] = None,
             key=None) -> EnsembleTerm:
        """``loss`` for ``student`` against all ``teachers`` of one tap.

        Args:
            loss: A distillation loss module.
            student: Student logits ``(N, C[, H, W])``.
            teachers: One logit tensor per teacher, all of the student's
                shape (the host glue resizes them, e.g. SegDistiller).
            target: Labels passed on to the loss.
            cache: A dict living for one step: the ensemble logits per
                temperature are computed once per ``key`` (the tap) and
                shared by the losses.
            key: Cache key of this set of teacher logits.
        """
        if len(self) == 1:  # exactly the single-teacher distiller
            value = loss(student, teachers[0], target)
            return EnsembleTerm(
                value, dict(getattr(loss, 'last_components', {})), {})
        cache = {} if cache is None else cache
        for index, logits in enumerate(teachers):
            if logits.shape != student.shape:
                raise ValueError(
                    f'{teacher_label(index, len(self))} logits '
                    f'{tuple(logits.shape)} differ from the student logits '
                    f'{tuple(student.shape)}; the distiller must resize '
                    'them to the student\'s')
        teachers = [logits.detach() for logits in teachers]
        if self.mode == 'prob':
            temperature = class_softmax_temperature(type(loss).__name__, loss)
            ens = cache.get(('prob', key, temperature))
            if ens is None:
                with torch.no_grad():
                    ens = ensemble_logits(teachers, self.weights, temperature)
                cache[('prob', key, temperature)] = ens
            value = loss(student, ens, target)
            return EnsembleTerm(
                value, dict(getattr(loss, 'last_components', {})), {})
        value, components, per_teacher = None, {}, {}
        for index, (weight, logits) in enumerate(zip(self.weights, teachers)):
            single = loss(student, logits, target)
            per_teacher[teacher_label(index, len(self))] = single.detach()
            # Components average like the loss, so that the loss's identity
            # (e.g. GDKD's loss = w0*high + w1*low_top + w2*low_other) holds
            # for the logged ensemble components too.
            for part, part_value in getattr(loss, 'last_components',
                                            {}).items():
                scaled = part_value * weight
                components[part] = scaled if part not in components else \
                    components[part] + scaled
            single = single * weight
            value = single if value is None else value + single
        return EnsembleTerm(value, components, per_teacher)
