# Copyright (c) mmgdkd contributors. All rights reserved.
"""Where an MMSeg segmentor's per-pixel class logits come from ("taps").

The only module that knows MMSeg's model structure. Tap names follow
MMSeg's own loss prefixes:

* ``'decode'``: the segmentor's prediction logits. For an
  ``EncoderDecoder`` the decode head; for a ``CascadeEncoderDecoder`` the
  final stage (e.g. OCRNet's ``OCRHead``). PointRend's ``PointHead``
  predicts at randomly sampled points only while training, so its tap is
  the map MMSeg's inference makes: the coarse stage's logits refined by the
  point head at the most uncertain points (``PointHead.predict`` with the
  segmentor's ``test_cfg``), at the input size.
* ``'decode_<i>'``: stage ``i`` of a cascade (cascades only).
* ``'aux'`` or ``'aux_<i>'``: the auxiliary head(s).

Heads whose training forward returns several maps (``DAHead``,
``EncHead``, ``DDRHead``, ``PIDHead``, K-Net's ``IterativeDecodeHead``)
give the map that the head predicts from at inference.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope
from mmseg.models.decode_heads import (DAHead, DDRHead, EncHead,
                                       IterativeDecodeHead, Mask2FormerHead,
                                       MaskFormerHead, PIDHead, PointHead,
                                       SideAdapterCLIPHead)
from mmseg.models.decode_heads.cascade_decode_head import \
    BaseCascadeDecodeHead
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import (CascadeEncoderDecoder, DepthEstimator,
                                     EncoderDecoder)
from mmseg.registry import MODELS
from mmseg.utils import add_prefix
from torch import Tensor

from .utils import head_overrides_loss

HeadOutput = Union[Tensor, Sequence[Tensor]]

#: Heads whose forward returns several maps: index of the prediction map.
_PREDICTION_INDEX = (
    (DAHead, 0),  # (pam_cam, pam, cam)
    (EncHead, 0),  # (seg, se) with use_se_loss
    (DDRHead, 0),  # training: (main, extra)
    (PIDHead, 1),  # training: (P, I, D); inference uses I
    (IterativeDecodeHead, -1),  # training: every K-Net stage
)

#: Heads that predict at sampled points only while training: their tap is
#: the inference-time refined map, ``head.predict`` at the input size.
_POINT_HEADS = (PointHead, )

#: Segmentors and heads without per-pixel class logits, and why.
_REFUSED_SEGMENTORS = {
    DepthEstimator: 'it predicts depth, not class logits',
}
_REFUSED_HEADS = {
    MaskFormerHead: 'it is a mask-classification head: it predicts a set '
    'of query masks with one class score per query, not per-pixel class '
    'logits, so there is no pixel-wise class distribution to distil',
    Mask2FormerHead: 'it is a mask-classification head: it predicts a set '
    'of query masks with one class score per query, not per-pixel class '
    'logits, so there is no pixel-wise class distribution to distil',
    SideAdapterCLIPHead: 'it is an open-vocabulary mask-classification head '
    '(query masks scored against CLIP text embeddings), not per-pixel class '
    'logits',
}


# ---------------------------------------------------------------------------
# build-time checks (on configs, before anything is built)
# ---------------------------------------------------------------------------
def _resolve(type_name, role: str) -> type:
    if isinstance(type_name, type):
        return type_name
    with DefaultScope.overwrite_default_scope('mmseg'):
        cls = MODELS.get(type_name)
    if cls is None:
        raise ValueError(f'{role}: type {type_name!r} is not registered in '
                         'MMSeg\'s MODELS registry')
    return cls


def check_segmentor_cfg(cfg: dict, role: str) -> None:
    """Refuse a segmentor config that has no per-pixel class logits.

    Args:
        cfg: A model config (resolved, with ``type``).
        role: ``'student'`` or ``'teacher'``, for the message.

    Raises:
        ValueError: The segmentor is not an ``EncoderDecoder`` /
            ``CascadeEncoderDecoder``, or one of its heads does not predict
            per-pixel class logits (MaskFormer, Mask2Former, SAN); the
            message says why.
    """
    seg_cls = _resolve(cfg.get('type'), role)
    for refused, why in _REFUSED_SEGMENTORS.items():
        if issubclass(seg_cls, refused):
            raise ValueError(f'{role} {seg_cls.__name__} cannot be distilled '
                             f'by SegDistiller: {why}')
    if not issubclass(seg_cls, EncoderDecoder):
        raise ValueError(
            f'{role} {seg_cls.__name__} cannot be distilled by SegDistiller, '
            'which distils the per-pixel class logits of EncoderDecoder and '
            'CascadeEncoderDecoder segmentors (e.g. SAN\'s '
            'MultimodalEncoderDecoder classifies query masks with CLIP text '
            'embeddings instead)')
    heads = cfg.get('decode_head')
    heads = heads if isinstance(heads, (list, tuple)) else [heads]
    aux = cfg.get('auxiliary_head')
    aux = [] if aux is None else aux if isinstance(aux, (list, tuple)) \
        else [aux]
    for where, head_cfgs in (('decode_head', heads), ('auxiliary_head', aux)):
        for head_cfg in head_cfgs:
            if not isinstance(head_cfg, dict) or 'type' not in head_cfg:
                continue
            head_cls = _resolve(head_cfg['type'], role)
            for refused, why in _REFUSED_HEADS.items():
                if issubclass(head_cls, refused):
                    raise ValueError(
                        f'{role} {where} {head_cls.__name__} cannot be '
                        f'distilled by SegDistiller: {why}')


# ---------------------------------------------------------------------------
# structure of a built segmentor
# ---------------------------------------------------------------------------
def is_cascade(model: nn.Module) -> bool:
    return isinstance(model, CascadeEncoderDecoder)


def decode_stages(model: nn.Module) -> List[BaseDecodeHead]:
    """The decode head(s): one for ``EncoderDecoder``, every cascade stage."""
    if is_cascade(model):
        return list(model.decode_head)
    return [model.decode_head]


def aux_heads(model: nn.Module) -> Dict[str, BaseDecodeHead]:
    """``{'aux': head}`` or ``{'aux_<i>': head}`` (MMSeg's loss prefixes)."""
    aux = getattr(model, 'auxiliary_head', None)
    if isinstance(aux, nn.ModuleList):
        return {f'aux_{i}': head for i, head in enumerate(aux)}
    return {} if aux is None else {'aux': aux}


def _stage_names(model: nn.Module) -> List[str]:
    return [f'decode_{i}' for i in range(len(decode_stages(model)))] \
        if is_cascade(model) else ['decode']


def tap_names(model: nn.Module) -> List[str]:
    """Every tap of ``model``: ``decode``, cascade stages, aux heads."""
    names = ['decode']
    if is_cascade(model):
        names += _stage_names(model)
    return names + list(aux_heads(model))


def tap_channels(model: nn.Module) -> Dict[str, int]:
    """Logit channels of every tap (``out_channels``: the class count, or 1
    for a binary sigmoid head; an auxiliary head may predict another target,
    e.g. STDC's 2-class detail head)."""
    stages = dict(zip(_stage_names(model), decode_stages(model)))
    out = {'decode': stages[_stage_names(model)[-1]].out_channels}
    if is_cascade(model):
        out.update({name: stages[name].out_channels
                    for name in _stage_names(model)})
    out.update({name: head.out_channels
                for name, head in aux_heads(model).items()})
    return out


def validate_structure(model: nn.Module, role: str) -> None:
    """A built segmentor must expose dense logits to distil."""
    for name, head in list(zip(_stage_names(model), decode_stages(model))) + \
            list(aux_heads(model).items()):
        for refused, why in _REFUSED_HEADS.items():
            if isinstance(head, refused):
                raise ValueError(f'{role} {name} head {type(head).__name__} '
                                 f'cannot be distilled: {why}')


def prediction_map(head: nn.Module, output: HeadOutput) -> Tensor:
    """The per-pixel class logits ``(N, C, h, w)`` in a head's output."""
    if isinstance(output, Tensor):
        return output
    for head_cls, index in _PREDICTION_INDEX:
        if isinstance(head, head_cls):
            return output[index]
    raise ValueError(
        f'{type(head).__name__}.forward returned a {type(output).__name__} '
        'of several maps and SegDistiller does not know which one holds the '
        'class logits (known: '
        f'{", ".join(c.__name__ for c, _ in _PREDICTION_INDEX)})')


# ---------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------
class HeadRunner:
    """Runs a segmentor's heads once, giving logits per tap (and losses).

    Args:
        model: A built ``EncoderDecoder`` / ``CascadeEncoderDecoder``.
        warn_loss_overrides: Warn about heads whose ``loss`` is more than
            forward + ``loss_by_feat`` (student only: their logits cost a
            second forward).
    """

    def __init__(self, model: nn.Module,
                 warn_loss_overrides: bool = False) -> None:
        self.cascade = is_cascade(model)
        self.stage_names = _stage_names(model)
        self.decode_name = self.stage_names[-1]
        self.own_loss = {}
        if warn_loss_overrides:
            heads = dict(zip(self.stage_names, decode_stages(model)))
            heads.update(aux_heads(model))
            for name, head in heads.items():
                if isinstance(head, _POINT_HEADS):
                    continue  # own loss only, never a second forward
                base = BaseCascadeDecodeHead if isinstance(
                    head, BaseCascadeDecodeHead) else BaseDecodeHead
                self.own_loss[name] = head_overrides_loss(head, base)

    def __call__(self,
                 model: nn.Module,
                 feats,
                 taps: Optional[Sequence[str]] = None,
                 data_samples: Optional[list] = None,
                 input_size: Optional[Sequence[int]] = None
                 ) -> Tuple[Dict[str, Tensor], dict]:
        """Logits ``{tap: (N, C, h, w)}`` and, given ``data_samples``, the
        heads' task losses under MMSeg's names (``decode.loss_ce``,
        ``decode_1.loss_ce``, ``aux_0.loss_ce``...).

        ``taps=None`` computes every tap; otherwise only the heads needed
        (a cascade stage needs the stages before it). ``input_size``
        ``(H, W)``: the size of a point head's refined map (required when
        one is computed).
        """
        train = data_samples is not None
        logits, losses = {}, {}
        stages = decode_stages(model)
        wanted = None if taps is None else set(taps)
        if wanted is not None and 'decode' in wanted:
            wanted.add(self.decode_name)
        last_stage = len(stages) - 1
        if not train and wanted is not None:
            needed = [i for i, n in enumerate(self.stage_names)
                      if n in wanted]
            last_stage = max(needed, default=-1)
        prev = None
        for i, (name, head) in enumerate(zip(self.stage_names, stages)):
            if i > last_stage:
                break
            if isinstance(head, _POINT_HEADS):
                # training logits exist at random points only: the head's
                # own loss, then the refined map its inference makes
                if train:
                    losses.update(add_prefix(
                        head.loss(feats, prev, data_samples, model.train_cfg),
                        name))
                if wanted is None or name in wanted:
                    logits[name] = refined_map(head, feats, prev,
                                               model.test_cfg, input_size)
                continue
            out = head.forward(feats, prev) if self.cascade and i else \
                head.forward(feats)
            if train:
                if self.own_loss.get(name):
                    args = (feats, prev) if self.cascade and i else (feats, )
                    head_losses = head.loss(*args, data_samples,
                                            model.train_cfg)
                else:
                    head_losses = head.loss_by_feat(out, data_samples)
                losses.update(add_prefix(head_losses, name))
            logits[name] = prediction_map(head, out)
            prev = out
        if self.decode_name in logits:
            logits['decode'] = logits[self.decode_name]
        for name, head in aux_heads(model).items():
            if wanted is not None and name not in wanted and not train:
                continue
            out = head.forward(feats)
            if train:
                if self.own_loss.get(name):
                    head_losses = head.loss(feats, data_samples,
                                            model.train_cfg)
                else:
                    head_losses = head.loss_by_feat(out, data_samples)
                losses.update(add_prefix(head_losses, name))
            logits[name] = prediction_map(head, out)
        if wanted is not None:
            logits = {k: v for k, v in logits.items() if k in wanted}
        return logits, losses


def refined_map(head: nn.Module, feats, coarse: Tensor, test_cfg,
                input_size: Optional[Sequence[int]]) -> Tensor:
    """A point head's inference output ``(N, C, H, W)`` at the input size
    ``(H, W)``: ``coarse`` upsampled ``test_cfg.subdivision_steps`` times,
    the ``subdivision_num_points`` most uncertain points of each step
    replaced by the point head's logits (MMSeg's ``PointHead.predict``;
    differentiable through the replaced points and the coarse map)."""
    if input_size is None:
        raise ValueError(f'{type(head).__name__}: the refined map needs the '
                         'input size (input_size=None)')
    if test_cfg is None:
        raise ValueError(f'{type(head).__name__}: the refined map needs the '
                         'segmentor\'s test_cfg (subdivision_steps, '
                         'subdivision_num_points, scale_factor), got None')
    # img_shape as a tuple: predict_by_feat resizes to it
    metas = [dict(img_shape=tuple(int(s) for s in input_size))]
    return head.predict(feats, coarse, metas, ConfigDict(test_cfg))


def resize_to(logits: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear (``align_corners=False``) resize of ``(N, C, h, w)`` logits
    to ``size``; returned as is when already that size (no host sync: shapes
    are host-side metadata)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(
        logits, size=tuple(size), mode='bilinear', align_corners=False)


def pair_taps(student: nn.Module, teacher: nn.Module,
              teacher_taps: Optional[Dict[str, str]] = None
              ) -> Dict[str, str]:
    """Which teacher tap each student tap is distilled from.

    Same-named taps with the same number of logit channels pair by default
    (so auxiliary heads pair only where both models have them); a
    ``teacher_taps={student_tap: teacher_tap}`` entry pairs any two taps
    explicitly, e.g. ``dict(aux_1='decode')``.

    Raises:
        ValueError: An unknown tap name on either side, or an explicit pair
            whose channel counts differ.
    """
    s_taps, t_taps = tap_channels(student), tap_channels(teacher)
    pairs = {tap: tap for tap in s_taps
             if tap in t_taps and s_taps[tap] == t_taps[tap]}
    for s_tap, t_tap in (teacher_taps or {}).items():
        if s_tap not in s_taps:
            raise ValueError(
                f'teacher_taps: {s_tap!r} is not a tap of the student '
                f'{type(student).__name__} (its taps: {sorted(s_taps)})')
        if t_tap not in t_taps:
            raise ValueError(
                f'teacher_taps: {t_tap!r} (for student tap {s_tap!r}) is not '
                f'a tap of the teacher {type(teacher).__name__} (its taps: '
                f'{sorted(t_taps)})')
        if s_taps[s_tap] != t_taps[t_tap]:
            raise ValueError(
                f'teacher_taps: student tap {s_tap!r} has {s_taps[s_tap]} '
                f'logit channels, teacher tap {t_tap!r} has {t_taps[t_tap]}')
        pairs[s_tap] = t_tap
    return pairs


def unpaired_reason(tap: str, student: nn.Module, teacher: nn.Module,
                    pairs: Dict[str, str]) -> str:
    """Why student ``tap`` cannot be distilled ('' if it can)."""
    s_taps, t_taps = tap_channels(student), tap_channels(teacher)
    if tap not in s_taps:
        return (f'{tap!r} is not a tap of the student '
                f'{type(student).__name__} (its taps: {sorted(s_taps)})')
    if tap in pairs:
        return ''
    if tap in t_taps:
        return (f'student tap {tap!r} has {s_taps[tap]} logit channels, the '
                f'teacher\'s {t_taps[tap]}; map it to a teacher tap with '
                f'teacher_taps={{{tap!r}: <teacher tap>}}')
    return (f'{tap!r} is not a tap of the teacher {type(teacher).__name__} '
            f'(its taps: {sorted(t_taps)}); map it with '
            f'teacher_taps={{{tap!r}: <teacher tap>}}')
