# Copyright (c) mmgdkd contributors. All rights reserved.
"""MMSegmentation glue: distil a segmentor's head logits pixel-wise."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from torch import Tensor

from .base_distiller import BaseDistiller
from .teacher_ensemble import teacher_label
from .seg_taps import (HeadRunner, aux_heads, check_segmentor_cfg, pair_taps,
                       resize_to, tap_names, unpaired_reason,
                       validate_structure)
from .utils import ModelSpec, load_model_cfg

#: Distillation weight of the auxiliary head relative to the decode head in
#: the published segmentation recipe.
AUX_HEAD_WEIGHT = 0.4


@MODELS.register_module()
class SegDistiller(BaseDistiller):
    """Distil a student segmentor from a frozen teacher (or an ensemble of
    teachers, see :class:`BaseDistiller`), pixel-wise.

    Student and teacher are MMSeg ``EncoderDecoder`` or
    ``CascadeEncoderDecoder`` models with per-pixel class logits, of any
    backbone and head set; MaskFormer/Mask2Former/SAN (mask classification)
    and depth estimators are refused when the distiller is built.

    Logits are taken at each head's own resolution (stride 8 for
    PSPNet/DeepLabV3: ``(N, C, H/8, W/8)``); the teacher's are resized
    bilinearly (``align_corners=False``) to the paired student logits' size
    when the strides differ, and passed to each distillation loss with the
    ground-truth map ``(N, H, W)`` (the losses resize it and mask
    ``ignore_index``). Taps are named as MMSeg's loss prefixes: ``'decode'``
    (a cascade's final stage), ``'decode_<i>'`` (cascade
    stages), ``'aux'`` / ``'aux_<i>'``; see :mod:`.seg_taps` (PointRend's
    ``'decode'`` is its inference-time refined map, at the input size).

    Args:
        logits_at: ``'head'`` (default; the published setting) or
            ``'label'``: both logits are upsampled bilinearly to the label
            size before the losses (64x more rows at stride 8).
        teacher_taps: ``{student_tap: teacher_tap}`` pairs beyond the
            default (same name and channel count on both), e.g.
            ``dict(aux_1='decode')`` distils the student's second auxiliary
            head from the teacher's prediction. Mapped taps join the default
            ``head_weights`` at the auxiliary weight.
        train_cfg, pretrained: Accepted because ``mmseg.apis.init_model``
            sets them on any model config; a non-``None`` ``pretrained`` is
            forwarded to the student.
        **kwargs: See :class:`BaseDistiller`.

    Example::

        model = dict(
            type='SegDistiller',
            student=dict(cfg_path='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_'
                         'cityscapes-512x1024.py'),
            teacher=dict(cfg_path='mmseg::pspnet/pspnet_r101-d8_4xb2-80k_'
                         'cityscapes-512x1024.py'),
            teacher_ckpt='pspnet_r101.pth',
            distill_losses=dict(loss_gdkd=dict(type='GDKDLoss', k=3)))
    """

    host_models = MODELS
    classifier_key = 'decode_head.conv_seg.weight'

    def __init__(self,
                 student: ModelSpec,
                 teacher: ModelSpec,
                 logits_at: str = 'head',
                 teacher_taps: Optional[Dict[str, str]] = None,
                 train_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 **kwargs) -> None:
        if logits_at not in ('head', 'label'):
            raise ValueError(
                f"logits_at must be 'head' or 'label', got {logits_at!r}")
        student = load_model_cfg(student)
        if pretrained is not None:
            student = dict(student, pretrained=pretrained)
        check_segmentor_cfg(student, 'student')
        if isinstance(teacher, (list, tuple)):
            teacher = [load_model_cfg(t) for t in teacher]
            for t_cfg in teacher:
                check_segmentor_cfg(t_cfg, 'teacher')
        else:
            teacher = load_model_cfg(teacher)
            check_segmentor_cfg(teacher, 'teacher')
        if teacher_taps is not None and not isinstance(teacher_taps, dict):
            raise ValueError('teacher_taps must be a dict {student_tap: '
                             f'teacher_tap}}, got {teacher_taps!r}')
        # read by the tap hooks that BaseDistiller.__init__ calls
        self._teacher_tap_cfg = dict(teacher_taps or {})
        super().__init__(student, teacher, **kwargs)
        self.logits_at = logits_at
        self._student_runner = HeadRunner(
            self.student, warn_loss_overrides=True)
        self._teacher_runners = [HeadRunner(t) for t in self.teachers]

    # ------------------------------------------------------------------
    # tap structure
    # ------------------------------------------------------------------
    def _teacher_index(self, teacher: Optional[nn.Module]) -> int:
        if teacher is None:
            teacher = self.teacher  # single-teacher distillers only
        return next(i for i, t in enumerate(self.teachers) if t is teacher)

    def _tap_pairs(self, teacher: Optional[nn.Module] = None
                   ) -> Dict[str, str]:
        """``{student_tap: teacher_tap}`` for every student tap that
        ``teacher`` (default: the single teacher) can distil."""
        index = self._teacher_index(teacher)
        cache = self.__dict__.setdefault('_pairs_cache', {})
        if index not in cache:
            teacher = self.teachers[index]
            validate_structure(self.student, 'student')
            validate_structure(teacher, teacher_label(index,
                                                      len(self.teachers)))
            cache[index] = pair_taps(self.student, teacher,
                                     self._teacher_tap_cfg)
        return cache[index]

    def _shared_pairs(self) -> List[str]:
        """Student taps that every teacher pairs with."""
        return [tap for tap in self._tap_pairs(self.teachers[0])
                if all(tap in self._tap_pairs(t) for t in self.teachers)]

    @staticmethod
    def num_classes(model: nn.Module) -> int:
        return model.num_classes

    def available_taps(self, model: nn.Module) -> List[str]:
        """The student's taps; for a teacher, the student taps it pairs
        with (so BaseDistiller's "available on both" check is the pairing)."""
        if any(model is t for t in self.teachers):
            return list(self._tap_pairs(model))
        return tap_names(model)

    def default_head_weights(self) -> Dict[str, float]:
        """The decode head at 1, paired auxiliary (and mapped) taps at 0.4."""
        pairs = self._shared_pairs()
        weights = {'decode': 1.}
        extra = set(aux_heads(self.student)) | set(self._teacher_tap_cfg)
        for tap in sorted((extra & set(pairs)) - {'decode'}):
            weights[tap] = AUX_HEAD_WEIGHT
        return weights

    def _build_distill_losses(self, distill_losses: dict,
                              head_weights: Optional[Dict[str, float]]
                              ) -> None:
        # name the unpaired tap, the teacher and why, before the generic
        # check
        requested = [head_weights or {}] + [
            cfg.get('heads', {}) for cfg in distill_losses.values()
            if isinstance(cfg, dict)]
        num = len(self.teachers)
        for index, teacher in enumerate(self.teachers):
            pairs = self._tap_pairs(teacher)
            which = '' if num == 1 else \
                f' from {teacher_label(index, num)}'
            for heads in requested:
                for tap in heads:
                    reason = unpaired_reason(tap, self.student, teacher,
                                             pairs)
                    if reason:
                        raise ValueError(
                            f'cannot distil head {tap!r}{which}: {reason}')
        super()._build_distill_losses(distill_losses, head_weights)

    # ------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------
    def student_forward_train(
            self, inputs: Tensor,
            data_samples: list) -> Tuple[Dict[str, Tensor], dict]:
        feats = self.student.extract_feat(inputs)
        logits, losses = self._student_runner(
            self.student, feats, data_samples=data_samples,
            input_size=inputs.shape[2:])
        return self._at_resolution(logits, inputs), losses

    def teacher_forward(self, inputs: Tensor, taps: List[str],
                        teacher: Optional[nn.Module] = None
                        ) -> Dict[str, Tensor]:
        """Logits of ``teacher`` (default: the single teacher) keyed by
        *student* tap, at the teacher's own size (:meth:`match_teacher`
        brings them to the student's)."""
        index = self._teacher_index(teacher)
        teacher = self.teachers[index]
        pairs = self._tap_pairs(teacher)
        feats = teacher.extract_feat(inputs)
        own, _ = self._teacher_runners[index](
            teacher, feats, taps=[pairs[tap] for tap in taps],
            input_size=inputs.shape[2:])
        return self._at_resolution({tap: own[pairs[tap]] for tap in taps},
                                   inputs)

    def match_teacher(self, teacher_logits: Dict[str, Tensor],
                      student_logits: Dict[str, Tensor]
                      ) -> Dict[str, Tensor]:
        """Teacher logits at the paired student logits' spatial size
        (bilinear; as is where the sizes already agree). Shapes are host
        metadata: no device sync."""
        return {
            tap: resize_to(value, student_logits[tap].shape[-2:])
            for tap, value in teacher_logits.items()
        }

    def distill_target(self, data_samples: list) -> Tensor:
        """Ground truth ``(N, H, W)`` (long) at the input size."""
        return torch.stack(
            [sample.gt_sem_seg.data for sample in data_samples]).squeeze(1)

    def _at_resolution(self, logits: Dict[str, Tensor],
                       inputs: Tensor) -> Dict[str, Tensor]:
        if self.logits_at == 'head':
            return logits
        size = inputs.shape[2:]
        return {
            tap: resize(value, size=size, mode='bilinear', align_corners=False)
            for tap, value in logits.items()
        }
