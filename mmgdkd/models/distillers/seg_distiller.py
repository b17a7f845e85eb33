# Copyright (c) mmgdkd contributors. All rights reserved.
"""MMSegmentation glue: distil ``EncoderDecoder`` head logits pixel-wise."""
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.utils import resize
from mmseg.registry import MODELS
from mmseg.utils import add_prefix
from torch import Tensor

from .base_distiller import BaseDistiller
from .utils import ModelSpec, head_overrides_loss, load_model_cfg

#: Distillation weight of the auxiliary head relative to the decode head in
#: the published segmentation recipe.
AUX_HEAD_WEIGHT = 0.4


@MODELS.register_module()
class SegDistiller(BaseDistiller):
    """Distil a student ``EncoderDecoder`` from a frozen teacher (or an
    ensemble of teachers, see :class:`BaseDistiller`).

    Logits are taken at the heads' own resolution (stride 8 for
    PSPNet/DeepLabV3: ``(N, C, H/8, W/8)``) and passed to each distillation
    loss with the ground-truth map ``(N, H, W)`` (the losses resize it and
    mask ``ignore_index``). Taps are ``'decode'`` and ``'aux'`` (or
    ``'aux_<i>'`` when ``auxiliary_head`` is a list), as in MMSeg's loss
    names.

    Args:
        logits_at: ``'head'`` (default; the published setting) or
            ``'label'``: both logits are upsampled bilinearly to the label
            size before the losses (64x more rows at stride 8).
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
                 train_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 **kwargs) -> None:
        if logits_at not in ('head', 'label'):
            raise ValueError(
                f"logits_at must be 'head' or 'label', got {logits_at!r}")
        if pretrained is not None:
            student = dict(load_model_cfg(student), pretrained=pretrained)
        super().__init__(student, teacher, **kwargs)
        self.logits_at = logits_at
        self._use_head_loss = {
            tap: head_overrides_loss(head, BaseDecodeHead)
            for tap, head in self._heads(self.student).items()
        }

    # ------------------------------------------------------------------
    @staticmethod
    def _heads(model: nn.Module) -> Dict[str, BaseDecodeHead]:
        heads = {'decode': model.decode_head}
        aux = getattr(model, 'auxiliary_head', None)
        if isinstance(aux, nn.ModuleList):
            heads.update({f'aux_{i}': head for i, head in enumerate(aux)})
        elif aux is not None:
            heads['aux'] = aux
        return heads

    @staticmethod
    def num_classes(model: nn.Module) -> int:
        return model.decode_head.num_classes

    def available_taps(self, model: nn.Module) -> List[str]:
        return list(self._heads(model))

    def default_head_weights(self) -> Dict[str, float]:
        """The decode head at 1, auxiliary heads present on both at 0.4."""
        weights = {'decode': 1.}
        shared = set(self._heads(self.student)).intersection(
            *[self._heads(teacher) for teacher in self.teachers])
        for tap in sorted(shared - {'decode'}):
            weights[tap] = AUX_HEAD_WEIGHT
        return weights

    # ------------------------------------------------------------------
    def student_forward_train(
            self, inputs: Tensor,
            data_samples: list) -> Tuple[Dict[str, Tensor], dict]:
        student = self.student
        feats = student.extract_feat(inputs)
        logits, losses = {}, {}
        for tap, head in self._heads(student).items():
            if self._use_head_loss[tap]:
                # The head's loss is more than forward + loss_by_feat (e.g.
                # point sampling): keep its semantics, pay a second forward.
                head_losses = head.loss(feats, data_samples, student.train_cfg)
                logits[tap] = head.forward(feats)
            else:
                logits[tap] = head.forward(feats)
                head_losses = head.loss_by_feat(logits[tap], data_samples)
            losses.update(add_prefix(head_losses, tap))
        return self._at_resolution(logits, inputs), losses

    def teacher_forward(self, inputs: Tensor, taps: List[str],
                        teacher: Optional[nn.Module] = None
                        ) -> Dict[str, Tensor]:
        teacher = self.teacher if teacher is None else teacher
        feats = teacher.extract_feat(inputs)
        heads = self._heads(teacher)
        logits = {tap: heads[tap].forward(feats) for tap in taps}
        return self._at_resolution(logits, inputs)

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
