# Copyright (c) mmgdkd contributors. All rights reserved.
"""Run a config's teacher over a data split and collect its logit rows.

The teacher of a ``SegDistiller``/``ClsDistiller`` config (or a plain
MMSeg/MMPretrain model config) is built with its weights, its head logits
are taken as the distillers take them (segmentation: at the decode head's
resolution, labels nearest-resized) and the valid rows are fed to a
:class:`~mmgdkd.analysis.RowReservoir`.
"""
from typing import Iterable, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.utils import ProgressBar

from ..models.distillers.utils import load_model_cfg, load_teacher_checkpoint
from ..utils.run_config import is_distiller_cfg
from .distribution import RowReservoir, seg_rows

#: Distiller type -> host scope.
DISTILLERS = {'SegDistiller': 'mmseg', 'ClsDistiller': 'mmpretrain'}
#: Host scope -> task.
TASKS = {'mmseg': 'seg', 'mmpretrain': 'cls'}
#: Host scope -> classifier weight (class-count messages).
CLASSIFIER_KEYS = {
    'mmseg': 'decode_head.conv_seg.weight',
    'mmpretrain': 'head.fc.weight'
}
SPLITS = ('val', 'test', 'train')


class Teacher(NamedTuple):
    model: nn.Module
    data_preprocessor: nn.Module
    scope: str  # 'mmseg' or 'mmpretrain'
    task: str  # 'seg' or 'cls'
    checkpoint: str
    source: str  # what was built, for the report
    ignore_index: Optional[int]


def host_scope(cfg: Config, config_path: str) -> str:
    """``'mmseg'`` or ``'mmpretrain'``: the host of the config's model."""
    model_type = str(cfg.model.get('type', ''))
    name = model_type.split('.')[-1]
    if name in DISTILLERS:
        return DISTILLERS[name]
    prefix = model_type.split('.')[0] if '.' in model_type else None
    for scope in (prefix, cfg.get('default_scope')):
        if scope in TASKS:
            return scope
    raise ValueError(
        f'cannot tell the host library of {config_path!r}: model.type is '
        f'{model_type!r} and default_scope {cfg.get("default_scope")!r}; '
        'expected a SegDistiller/ClsDistiller config or an MMSeg/MMPretrain '
        'model config')


def host_models(scope: str):
    if scope == 'mmseg':
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    return MODELS


def distill_loss_settings(cfg: Config) -> Tuple[Optional[float],
                                                Optional[int], str]:
    """``(temperature, k, loss name)`` of the config's distillation loss.

    A ``GDKDLoss`` is preferred; ``k`` is given only for its fixed top-k
    strategies. ``(None, None, '')`` without a distillation loss.
    """
    losses = cfg.model.get('distill_losses') or {}
    items = sorted(
        losses.items(),
        key=lambda kv: not str(kv[1].get('type', '')).endswith('GDKDLoss'))
    for name, loss in items:
        if 'temperature' in loss or str(loss.get('type', '')).endswith(
                ('GDKDLoss', 'DKDLoss', 'KDLoss')):
            k = None
            if str(loss.get('type', '')).endswith('GDKDLoss') and \
                    loss.get('strategy', 'topk') in ('topk', 'topk3'):
                k = int(loss.get('k', 3))
            return float(loss.get('temperature', 1.0)), k, name
    return None, None, ''


def select_teacher(cfg: Config, config_path: str,
                   teacher_index: Optional[int]) -> tuple:
    """``(spec, checkpoint)`` of the distiller's teacher, or of the
    ``teacher_index``-th (from 1) teacher of an ensemble."""
    spec, ckpt = cfg.model.teacher, cfg.model.get('teacher_ckpt')
    if not isinstance(spec, (list, tuple)):
        return spec, ckpt
    if teacher_index is None or not 1 <= teacher_index <= len(spec):
        raise ValueError(
            f'{config_path!r} has an ensemble of {len(spec)} teachers: '
            f'choose one with --teacher-index 1..{len(spec)} (got '
            f'{teacher_index})')
    if isinstance(ckpt, (list, tuple)):
        ckpt = ckpt[teacher_index - 1]
    return spec[teacher_index - 1], ckpt


def build_teacher(cfg: Config, config_path: str,
                  checkpoint: Optional[str] = None,
                  teacher_index: Optional[int] = None) -> Teacher:
    """The teacher (or plain model) of a config, with weights, in eval mode.

    For a distiller config the teacher is ``model.teacher`` and the batches
    are preprocessed as in training: ``model.data_preprocessor``, else the
    top-level ``data_preprocessor`` (the runner's default), else the
    student's.
    """
    scope = host_scope(cfg, config_path)
    models = host_models(scope)
    if is_distiller_cfg(cfg.model):
        teacher_spec, teacher_ckpt = select_teacher(cfg, config_path,
                                                    teacher_index)
        model_cfg = load_model_cfg(teacher_spec)
        checkpoint = checkpoint or teacher_ckpt
        if not checkpoint:
            raise ValueError(
                f'{config_path!r}: model.teacher_ckpt is '
                f'{cfg.model.get("teacher_ckpt")!r} and no --checkpoint was '
                'given; pass the teacher\'s weights with --checkpoint PATH')
        pre_cfg = cfg.model.get('data_preprocessor') or cfg.get(
            'data_preprocessor') or load_model_cfg(
                cfg.model.student).get('data_preprocessor')
        source = (f'model.teacher of the {cfg.model.type} config '
                  f'({model_cfg.get("type")})')
    else:
        if not checkpoint:
            raise ValueError(
                f'{config_path!r} is a plain model config (model.type='
                f'{cfg.model.get("type")!r}), not a distiller with a teacher: '
                'give its weights with --checkpoint PATH')
        model_cfg = ConfigDict(cfg.model.to_dict())
        if model_cfg.get('data_preprocessor') is None and \
                cfg.get('data_preprocessor') is not None:
            model_cfg.data_preprocessor = cfg.data_preprocessor
        pre_cfg = None
        source = f'model of the config ({model_cfg.get("type")})'

    with DefaultScope.overwrite_default_scope(scope):
        model = models.build(model_cfg)
        if pre_cfg is None:
            preprocessor = model.data_preprocessor
        else:
            pre_cfg = dict(pre_cfg)
            pre_cfg.setdefault('type', 'SegDataPreProcessor' if scope ==
                               'mmseg' else 'ClsDataPreprocessor')
            preprocessor = models.build(pre_cfg)
    load_teacher_checkpoint(model, checkpoint, CLASSIFIER_KEYS[scope])
    print_log(f'Loaded teacher weights from {checkpoint}', logger='current')
    model = revert_sync_batchnorm(model)
    model.requires_grad_(False)
    model.eval()
    preprocessor.eval()
    ignore_index = None
    if scope == 'mmseg':
        ignore_index = getattr(model.decode_head, 'ignore_index', 255)
    return Teacher(model, preprocessor, scope, TASKS[scope], checkpoint,
                   source, ignore_index)


def teacher_logits(model: nn.Module, task: str,
                   inputs: torch.Tensor) -> torch.Tensor:
    """Head logits: ``(N, C, h, w)`` at the decode head's resolution for
    segmentation (``extract_feat`` + ``decode_head.forward``, as the
    distiller), ``(N, C)`` for classification (``head(extract_feat(x))``)."""
    feats = model.extract_feat(inputs)
    head = model.decode_head if task == 'seg' else model.head
    logits = head.forward(feats) if task == 'seg' else head(feats)
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f'{type(head).__name__} returned '
                        f'{type(logits).__name__}, not a logit tensor')
    expected = 4 if task == 'seg' else 2
    if logits.dim() != expected:
        raise ValueError(f'{type(head).__name__} logits have shape '
                         f'{tuple(logits.shape)}; expected {expected} dims')
    return logits


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------
def build_loader(cfg: Config, split: str, seed: int, shuffle: bool):
    """``<split>_dataloader`` of the config, finite and in eval order
    (shuffled, seeded, when only a subset is used)."""
    key = f'{split}_dataloader'
    if not cfg.get(key):
        present = [s for s in SPLITS if cfg.get(f'{s}_dataloader')]
        raise ValueError(f'the config has no {key}; splits with a '
                         f'dataloader: {present}')
    loader_cfg = ConfigDict(cfg[key].to_dict())
    # An InfiniteSampler (train) never ends; a batch sampler may group by
    # aspect ratio, harmless, but a plain sampler is enough here.
    loader_cfg.sampler = dict(type='DefaultSampler', shuffle=shuffle)
    loader_cfg.pop('batch_sampler', None)
    if not loader_cfg.get('num_workers'):
        loader_cfg.persistent_workers = False
    return Runner.build_dataloader(loader_cfg, seed=seed)


def seg_labels(data_samples: list, input_hw: Tuple[int, int],
               ignore_index: Optional[int]) -> torch.Tensor:
    """Ground truth ``(N, H, W)`` aligned with the network input.

    A map loaded before ``Resize`` matches ``img_shape`` already; one
    loaded after it (original size) is nearest-resized to ``img_shape``.
    Padding added by the data preprocessor (bottom/right) is ignored.
    """
    pad_value = 255 if ignore_index is None else ignore_index
    maps = []
    for sample in data_samples:
        if 'gt_sem_seg' not in sample:
            raise ValueError(
                'the data samples have no gt_sem_seg: the split\'s pipeline '
                'must load the annotations (LoadAnnotations)')
        gt = sample.gt_sem_seg.data.reshape(-1, *sample.gt_sem_seg.shape)[0]
        img_hw = tuple(sample.metainfo.get('img_shape', gt.shape))[:2]
        if tuple(gt.shape) != img_hw:
            gt = F.interpolate(gt[None, None].float(), size=img_hw,
                               mode='nearest')[0, 0].to(gt.dtype)
        gt = gt[:input_hw[0], :input_hw[1]]
        gt = F.pad(gt, (0, input_hw[1] - gt.shape[1], 0,
                        input_hw[0] - gt.shape[0]), value=pad_value)
        maps.append(gt.long())
    return torch.stack(maps)


def cls_labels(data_samples: list) -> torch.Tensor:
    labels = []
    for sample in data_samples:
        if 'gt_label' not in sample:
            raise ValueError('the data samples have no gt_label (hard '
                             'labels are needed for the per-class '
                             'statistics)')
        label = sample.gt_label.view(-1)
        if label.numel() != 1:
            raise ValueError(f'one label per sample expected, got '
                             f'{label.numel()} (multi-label data is not '
                             'supported)')
        labels.append(label)
    return torch.cat(labels).long()


def collect_rows(teacher: Teacher,
                 loader: Iterable,
                 reservoir: RowReservoir,
                 max_samples: Optional[int] = None,
                 progress: bool = True,
                 total: Optional[int] = None) -> Tuple[int, int]:
    """Run the teacher over ``loader``, offering every valid row (pixel or
    sample) to ``reservoir``.

    Returns:
        tuple[int, int]: Samples processed and the number of classes.
    """
    bar = ProgressBar(total or 0) if progress else None
    done, num_classes = 0, None
    for batch in loader:
        if max_samples is not None:
            need = max_samples - done
            if need <= 0:
                break
            batch = {key: value[:need] if isinstance(value, (list, tuple,
                                                             torch.Tensor))
                     else value for key, value in batch.items()}
        with torch.no_grad():
            data = teacher.data_preprocessor(batch, False)
            inputs, samples = data['inputs'], data['data_samples']
            logits = teacher_logits(teacher.model, teacher.task, inputs)
        if teacher.task == 'seg':
            labels = seg_labels(samples, tuple(inputs.shape[-2:]),
                                teacher.ignore_index)
            rows, labels = seg_rows(logits, labels, teacher.ignore_index)
        else:
            rows, labels = logits.float(), cls_labels(samples)
        num_classes = logits.shape[1]
        reservoir.add(rows, labels)
        done += inputs.shape[0]
        if bar is not None:
            for _ in range(inputs.shape[0]):
                bar.update()
    if bar is not None:
        print()
    return done, num_classes
