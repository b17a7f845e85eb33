# Copyright (c) mmgdkd contributors. All rights reserved.
"""Model-config resolution and teacher checkpoint loading for distillers."""
import os.path as osp
import warnings
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.hub import get_config
from mmengine.runner.checkpoint import CheckpointLoader

ModelSpec = Union[dict, ConfigDict, str]


def load_model_cfg(spec: ModelSpec) -> ConfigDict:
    """Resolve a student/teacher spec into a model config dict.

    Args:
        spec: A model config dict, a config file path (``'mmseg::...'``
            paths included), or a dict with ``cfg_path`` plus overrides that
            are merged recursively into that file's ``model`` (e.g.
            ``dict(cfg_path='mmseg::pspnet/...py', pretrained=None)``).

    Returns:
        ConfigDict: The model config (a fresh copy).
    """
    if isinstance(spec, str):
        spec = dict(cfg_path=spec)
    if not isinstance(spec, dict):
        raise TypeError(f'a model spec must be a dict or a config path, '
                        f'got {type(spec).__name__}: {spec!r}')
    spec = ConfigDict(spec)
    cfg_path = spec.pop('cfg_path', None)
    if cfg_path is None:
        if 'type' not in spec:
            raise ValueError(f'a model spec needs `type` or `cfg_path`; got '
                             f'keys {sorted(spec)}')
        return spec
    file_cfg = load_config(cfg_path)
    if 'model' not in file_cfg:
        raise ValueError(f'{cfg_path!r} defines no `model`')
    if 'data_preprocessor' in file_cfg and \
            'data_preprocessor' not in file_cfg.model:
        # MMPretrain configs keep it at top level; the runner would move it.
        file_cfg.model.data_preprocessor = file_cfg.data_preprocessor
    model_cfg = Config(dict(model=file_cfg.model))
    model_cfg.merge_from_dict(dict(model=spec.to_dict()), allow_list_keys=True)
    return ConfigDict(model_cfg.model.to_dict())


def load_config(path: str) -> Config:
    """Load a config file; ``'mmseg::...'``-style package paths included."""
    try:
        if '::' in path:
            return get_config(path)
        return Config.fromfile(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f'config {path!r} not found: {err}') from err


def is_url(path: str) -> bool:
    return path.startswith(('http://', 'https://'))


def strip_prefix(state_dict: Dict[str, torch.Tensor],
                 prefix: str) -> Dict[str, torch.Tensor]:
    """Drop ``prefix`` from every key that has it (others are kept)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v
            for k, v in state_dict.items()}


def _summarise(keys: Sequence[str], limit: int = 5) -> str:
    keys = sorted(keys)
    shown = ', '.join(keys[:limit])
    more = f', ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return f'{len(keys)} ({shown}{more})'


def load_teacher_checkpoint(teacher: nn.Module,
                            filename: str,
                            classifier_key: Optional[str] = None) -> dict:
    """Load ``filename`` into ``teacher`` strictly, on CPU.

    Args:
        teacher: The teacher model (already built).
        filename: Local path or URL of an MMSeg/MMPretrain checkpoint (a
            plain state dict is accepted too).
        classifier_key: Key of the classifier weight (e.g.
            ``'decode_head.conv_seg.weight'``), used to report a class-count
            mismatch in plain words.

    Returns:
        dict: The checkpoint's ``meta`` (empty if none).

    Raises:
        FileNotFoundError: A local file that does not exist.
        ValueError: The checkpoint does not fit the teacher architecture
            (missing/unexpected keys, shape or class-count mismatch).
    """
    if not is_url(filename) and not osp.isfile(osp.expanduser(filename)):
        raise FileNotFoundError(
            f'teacher_ckpt {filename!r} does not exist; give the path or URL '
            'of the trained teacher checkpoint')
    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict):
        raise ValueError(f'teacher_ckpt {filename!r} holds no state dict')
    state = strip_prefix(state, 'module.')
    expected = teacher.state_dict()
    teacher_name = type(teacher).__name__

    if classifier_key and classifier_key in state and \
            classifier_key in expected and \
            state[classifier_key].shape[0] != expected[classifier_key].shape[0]:
        raise ValueError(
            f'class-count mismatch: teacher_ckpt {filename!r} has '
            f'{state[classifier_key].shape[0]} classes ({classifier_key}), '
            f'the teacher config has {expected[classifier_key].shape[0]}')
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    mismatched = [
        f'{k}: checkpoint {tuple(state[k].shape)} vs model '
        f'{tuple(expected[k].shape)}' for k in sorted(set(expected) & set(state))
        if state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f'missing keys: {_summarise(missing)}')
        if unexpected:
            problems.append(f'unexpected keys: {_summarise(unexpected)}')
        if mismatched:
            problems.append(f'shape mismatch: {"; ".join(mismatched[:5])}')
        raise ValueError(
            f'teacher_ckpt {filename!r} does not match the teacher '
            f'architecture ({teacher_name}): ' + ' | '.join(problems))
    teacher.load_state_dict(state, strict=True)
    return checkpoint.get('meta', {}) if isinstance(checkpoint, dict) else {}


def head_overrides_loss(head: nn.Module, host_head_cls: type) -> bool:
    """Whether ``head.loss`` is more than the host's forward + loss.

    Distillers reuse one head forward for the task loss and distillation;
    a head that overrides ``loss`` (e.g. point sampling) keeps its own
    semantics at the price of a second forward, which is warned about.
    """
    overrides = not isinstance(head, host_head_cls) or \
        type(head).loss is not host_head_cls.loss
    if overrides:
        warnings.warn(f'{type(head).__name__} overrides loss(); its logits '
                      'are computed twice per step')
    return overrides
