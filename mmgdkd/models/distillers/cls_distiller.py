# Copyright (c) mmgdkd contributors. All rights reserved.
"""MMPretrain glue: distil ``ImageClassifier`` head logits sample-wise."""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.heads import ClsHead
from mmpretrain.registry import MODELS
from torch import Tensor

from .base_distiller import BaseDistiller
from .utils import ModelSpec, head_overrides_loss, load_model_cfg

#: The only distillation tap of a classifier: the head's logits.
HEAD_TAP = 'head'


@MODELS.register_module()
class ClsDistiller(BaseDistiller):
    """Distil a student ``ImageClassifier`` from a frozen teacher (or an
    ensemble of teachers, see :class:`BaseDistiller`).

    The logits ``(N, num_classes)`` of the two heads are passed to each
    distillation loss with the labels ``(N,)``. The student's own loss (e.g.
    cross-entropy; its weight is the head's ``loss.loss_weight``) is computed
    from the same logits, so the student runs once per step.

    Batch augments (Mixup, CutMix) given by ``train_cfg`` (or the student's
    ``train_cfg``) run in the distiller's data preprocessor, so student and
    teacher see the same mixed images; the student's loss uses the mixed
    soft labels. Hard labels are then meaningless: losses that do not use
    them (GDKD, KD) get ``target=None``, and a loss that needs them (DKD)
    raises a ``ValueError``.

    Classification has no ignored labels: a distillation loss whose
    ``ignore_index`` is a real class (e.g. the default 255 on ImageNet) is
    rejected at build time; the configs set ``ignore_index=None``.

    Args:
        student: The student classifier: a config dict, a config path
            (``'mmpretrain::resnet/resnet18_8xb32_in1k.py'``) or
            ``dict(cfg_path=..., **overrides)``.
        teacher: The teacher classifier, in the same forms.
        train_cfg: ``ImageClassifier``'s ``train_cfg``: ``dict(augments=...)``
            batch augments for the distiller's data preprocessor. ``None``
            uses the student's.
        pretrained: Forwarded to the student (``ImageClassifier`` turns it
            into a ``Pretrained`` init); accepted because MMPretrain configs
            and tools may set it on any classifier config.
        data_preprocessor: Defaults to the student's; as in
            ``ImageClassifier``, a dict without ``type`` becomes a
            ``ClsDataPreprocessor``.
        **kwargs: See :class:`BaseDistiller` (``teacher_ckpt``,
            ``distill_losses``, ``warmup_epochs``, ...).

    Example::

        model = dict(
            type='ClsDistiller',
            student='mmpretrain::resnet/resnet18_8xb32_in1k.py',
            teacher='mmpretrain::resnet/resnet34_8xb32_in1k.py',
            teacher_ckpt='https://download.openmmlab.com/mmclassification/'
            'v0/resnet/resnet34_8xb32_in1k_20210831-f257d4e6.pth',
            warmup_epochs=1,
            distill_losses=dict(loss_gdkd=dict(type='GDKDLoss', k=5)))
    """

    host_models = MODELS
    classifier_key = 'head.fc.weight'
    # ImageClassifier turns `pretrained` into a whole-model Pretrained init.
    pretrained_is_whole_model = True

    def __init__(self,
                 student: ModelSpec,
                 teacher: ModelSpec,
                 train_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Union[dict, nn.Module, None] = None,
                 **kwargs) -> None:
        student_cfg = load_model_cfg(student)
        if pretrained is not None:
            student_cfg.pretrained = pretrained
        if train_cfg is None:
            train_cfg = student_cfg.get('train_cfg')
        if data_preprocessor is None:
            data_preprocessor = student_cfg.get('data_preprocessor')
        if data_preprocessor is None or isinstance(data_preprocessor, dict):
            # What ImageClassifier does with its own preprocessor config.
            data_preprocessor = dict(data_preprocessor or {})
            data_preprocessor.setdefault('type', 'ClsDataPreprocessor')
            data_preprocessor.setdefault('batch_augments', train_cfg)
        super().__init__(
            student_cfg, teacher, data_preprocessor=data_preprocessor,
            **kwargs)
        self.train_cfg = train_cfg
        self._use_head_loss = head_overrides_loss(self.student.head, ClsHead)
        self._check_ignore_index()
        if train_cfg and train_cfg.get('augments'):
            # Fail at build time rather than at the first training step.
            self._check_soft_labels_supported()

    # ------------------------------------------------------------------
    @staticmethod
    def num_classes(model: nn.Module) -> Optional[int]:
        return getattr(getattr(model, 'head', None), 'num_classes', None)

    def available_taps(self, model: nn.Module) -> List[str]:
        return [HEAD_TAP] if getattr(model, 'head', None) is not None else []

    def default_head_weights(self) -> Dict[str, float]:
        return {HEAD_TAP: 1.}

    # ------------------------------------------------------------------
    def student_forward_train(
            self, inputs: Tensor,
            data_samples: list) -> Tuple[Dict[str, Tensor], dict]:
        student = self.student
        feats = student.extract_feat(inputs)
        head = student.head
        if self._use_head_loss:
            # The head's loss is more than forward + _get_loss: keep its
            # semantics, pay a second head forward.
            losses = head.loss(feats, data_samples)
            logits = head(feats)
        else:
            logits = head(feats)
            losses = head._get_loss(logits, data_samples)
        return {HEAD_TAP: logits}, losses

    def teacher_forward(self, inputs: Tensor, taps: List[str],
                        teacher: Optional[nn.Module] = None
                        ) -> Dict[str, Tensor]:
        teacher = self.teacher if teacher is None else teacher
        return {HEAD_TAP: teacher.head(teacher.extract_feat(inputs))}

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None):
        """``tensor`` mode: the student's logits (MMPretrain has no
        ``_forward``; its ``forward(mode='tensor')`` is the equivalent)."""
        return self.student(inputs, data_samples, mode='tensor')

    def distill_target(self, data_samples: list) -> Optional[Tensor]:
        """Hard labels ``(N,)``; ``None`` under soft (mixed) labels."""
        if _has_soft_labels(data_samples):
            self._check_soft_labels_supported()
            return None
        return torch.cat([sample.gt_label for sample in data_samples])

    def _check_ignore_index(self) -> None:
        """An ``ignore_index`` that is a real class would drop its samples.

        The losses default to MMSeg's 255, which is a valid ImageNet class.
        """
        num_classes = self.num_classes(self.student)
        for name, loss in self.distill_losses.items():
            index = getattr(loss, 'ignore_index', None)
            if index is not None and num_classes is not None and \
                    0 <= index < num_classes:
                raise ValueError(
                    f'{name}: ignore_index={index} is a class of this '
                    f'{num_classes}-class classifier, so its samples would '
                    'be left out of the distillation; set '
                    'ignore_index=None (classification labels are never '
                    'ignored)')

    def _check_soft_labels_supported(self) -> None:
        needing = [
            f'{name} ({type(loss).__name__})'
            for name, loss in self.distill_losses.items()
            if _requires_target(loss)
        ]
        if needing:
            raise ValueError(
                'soft labels (gt_score from Mixup/CutMix batch augments) '
                'give no hard label per sample, but the distillation '
                f'loss(es) {", ".join(needing)} need one. Remove the batch '
                'augments (train_cfg.augments) or use a label-free loss '
                '(GDKDLoss, KDLoss).')


def _has_soft_labels(data_samples: list) -> bool:
    return bool(data_samples) and 'gt_score' in data_samples[0]


def _requires_target(loss: nn.Module) -> bool:
    """Whether a distillation loss needs hard labels (DKD does)."""
    return bool(getattr(loss, 'requires_target', False))
