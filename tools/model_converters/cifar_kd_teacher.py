# Copyright (c) mmgdkd contributors. All rights reserved.
"""Convert a published CIFAR-100 KD-benchmark teacher to an MMPretrain one.

The CRD (``HobbitLong/RepDistiller``) and mdistiller
(``megvii-research/mdistiller``, ``cifar_teachers.tar``) teachers are saved
as ``{'model': state_dict, 'epoch': ..., 'accuracy': ..., ...}`` with the
reference module names. mmgdkd's CIFAR backbones keep those names, so the
conversion only moves keys:

- ``fc.*`` (ResNet, WRN, ImageNet MobileNetV1), ``linear.*`` (ResNet50,
  ShuffleV1/V2), ``classifier.0.*`` (MobileNetV2) and ``classifier.*``
  (VGG) -> ``head.fc.*``;
- every other key -> ``backbone.*``; the ResNet50's ``shortcut`` becomes
  ``downsample`` (MMPretrain's ``ResNet_CIFAR`` is the same network);
- a ``module.`` prefix (``DataParallel``) is dropped.

The result, ``{'state_dict': ..., 'meta': {...}}``, loads strictly into the
``ImageClassifier`` of ``configs/_base_/models/cifar_<arch>.py`` and is the
``teacher_ckpt`` of the CIFAR distillation configs.

Example::

    python tools/model_converters/cifar_kd_teacher.py \\
        download_ckpts/cifar_teachers/resnet32x4_vanilla/ckpt_epoch_240.pth \\
        checkpoints/cifar_teachers/resnet32x4.pth \\
        --config configs/cifar_teachers/resnet32x4_240e_cifar100.py
"""
import argparse
import os
import os.path as osp
from collections import OrderedDict
from numbers import Number
from typing import Dict, Optional

import torch

from mmgdkd.engine.checkpoint import load_local_checkpoint
from mmgdkd.utils.known_warnings import silence_known_deprecations

#: Reference classifier prefixes, in the order they are tried.
CLASSIFIER_PREFIXES = ('fc.', 'linear.', 'classifier.0.', 'classifier.')
#: Backbone renames (reference -> mmgdkd / MMPretrain), applied to key parts.
RENAMES = (('.shortcut.', '.downsample.'), )
HEAD_PREFIX = 'head.fc.'
BACKBONE_PREFIX = 'backbone.'


def reference_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The model weights of a reference checkpoint.

    Accepts the published layout (weights under ``'model'``), a
    ``'state_dict'`` entry, or a bare state dict.
    """
    if isinstance(checkpoint, dict):
        for key in ('model', 'state_dict'):
            if isinstance(checkpoint.get(key), dict):
                return checkpoint[key]
        if checkpoint and all(
                isinstance(v, torch.Tensor) for v in checkpoint.values()):
            return checkpoint
    raise ValueError('no state dict found: expected the weights under '
                     "'model' (CRD / mdistiller teachers), under "
                     "'state_dict', or a bare state dict")


def convert_state_dict(
        state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename reference keys to ``ImageClassifier`` keys."""
    converted = OrderedDict()
    for key, value in state_dict.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        for prefix in CLASSIFIER_PREFIXES:
            if key.startswith(prefix):
                new_key = HEAD_PREFIX + key[len(prefix):]
                break
        else:
            for old, new in RENAMES:
                key = key.replace(old, new)
            new_key = BACKBONE_PREFIX + key
        if new_key in converted:
            raise ValueError(f'two keys map to {new_key!r}; is this a '
                             'CRD / mdistiller CIFAR checkpoint?')
        converted[new_key] = value
    if HEAD_PREFIX + 'weight' not in converted:
        raise ValueError(
            'no classifier found (no fc., linear. or classifier. weight); '
            'is this a CRD / mdistiller CIFAR checkpoint?')
    return converted


def convert(checkpoint, source: Optional[str] = None) -> dict:
    """Convert a loaded reference checkpoint; returns ``state_dict`` + meta."""
    state_dict = convert_state_dict(reference_state_dict(checkpoint))
    meta = dict(
        converted_by='mmgdkd tools/model_converters/cifar_kd_teacher.py',
        num_classes=int(state_dict[HEAD_PREFIX + 'weight'].shape[0]))
    if source is not None:
        meta['source'] = osp.basename(source)
    if isinstance(checkpoint, dict):
        for key in ('epoch', 'accuracy', 'best_acc', 'test_acc'):
            value = checkpoint.get(key)
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, Number):
                meta[key] = value
    return dict(state_dict=state_dict, meta=meta)


def verify(converted: dict, config: str) -> None:
    """Strictly load the converted weights into ``config``'s model."""
    import mmgdkd  # noqa: F401  (compat shims, CIFAR backbones)
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmgdkd.models.distillers.utils import load_model_cfg
    from mmgdkd.utils import is_distiller_cfg

    cfg = Config.fromfile(config)
    model_cfg = cfg.model
    if is_distiller_cfg(model_cfg):
        model_cfg = load_model_cfg(model_cfg.teacher)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    model.load_state_dict(converted['state_dict'], strict=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a CRD / mdistiller CIFAR teacher checkpoint '
        'to an MMPretrain ImageClassifier checkpoint')
    parser.add_argument('src', help='the published checkpoint '
                        '(e.g. resnet32x4_vanilla/ckpt_epoch_240.pth)')
    parser.add_argument('dst', help='where to save the converted checkpoint')
    parser.add_argument(
        '--config',
        help='a model config (a CIFAR teacher config or a distillation '
        'config, whose teacher is used) to strictly load the result into')
    parser.add_argument(
        '--allow-pickle',
        action='store_true',
        help='load with weights_only=False (only for files you trust; '
        'needed if the checkpoint stores non-tensor objects)')
    return parser.parse_args()


def main() -> None:
    silence_known_deprecations()
    args = parse_args()
    if args.allow_pickle:
        checkpoint = torch.load(
            args.src, map_location='cpu', weights_only=False)
    else:
        checkpoint = load_local_checkpoint(args.src, map_location='cpu')
    converted = convert(checkpoint, source=args.src)
    if args.config:
        verify(converted, args.config)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(converted, args.dst)
    meta = converted['meta']
    print(f'Saved {len(converted["state_dict"])} tensors '
          f'({meta["num_classes"]} classes) to {args.dst}'
          + (f'; strict load into {args.config} OK' if args.config else ''))


if __name__ == '__main__':
    main()
