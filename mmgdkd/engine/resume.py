# Copyright (c) mmgdkd contributors. All rights reserved.
"""What a run resumes from: the checkpoint, and whether it fits the config.

mmengine resumes any checkpoint whose weights fit the model. A GDKD, DKD
and KD run of the same model pair have the same student weights, so a
resume after switching algorithm (or teacher) would silently continue
another experiment. Every mmengine checkpoint stores the config that wrote
it (``meta['cfg']``); the setup described there is compared with the
current one.
"""
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmengine.config import Config

from .checkpoint import (CorruptCheckpointError, checkpoint_problem,
                         corrupt_message)
from ..models.distillers.utils import load_model_cfg
from ..utils.run_config import is_distiller_cfg

#: Model keys that describe an architecture (other keys, e.g. init or
#: data preprocessing, may change between a run and its resume).
_ARCH_PARTS = ('backbone', 'neck', 'decode_head', 'auxiliary_head', 'head')
_ARCH_KEYS = ('type', 'depth', 'arch', 'num_classes', 'channels',
              'in_channels', 'stem_channels', 'base_channels', 'widen_factor')
#: Loss options that are bookkeeping, not the distillation setup.
_LOSS_BOOKKEEPING = ('loss_name', )


def _arch(model_cfg: dict) -> str:
    """A one-line architecture description of a host model config."""
    parts = [str(model_cfg.get('type'))]
    for part in _ARCH_PARTS:
        sub = model_cfg.get(part)
        subs = sub if isinstance(sub, (list, tuple)) else [sub]
        for item in subs:
            if isinstance(item, dict):
                keys = ', '.join(f'{k}={item[k]}' for k in _ARCH_KEYS
                                 if k in item and k != 'type')
                parts.append(f'{part}={item.get("type")}({keys})')
    return ' '.join(parts)


def run_setup(cfg: Config) -> Dict[str, str]:
    """The parts of a config a resumed run must share with its checkpoint.

    Returns:
        dict: ``model`` (a plain model's architecture) or ``distiller``,
        ``student``, ``teacher``, ``teacher_ckpt`` and one entry per
        distillation loss (type and options).
    """
    model = cfg.get('model') or {}
    if not is_distiller_cfg(model):
        return dict(model=_arch(model))
    setup = dict(
        distiller=str(model.get('type')),
        student=_arch(load_model_cfg(model['student'])),
        teacher=_arch(load_model_cfg(model['teacher'])),
        # the file name: the same teacher may be a URL or its download
        teacher_ckpt=osp.basename(str(model.get('teacher_ckpt'))))
    for name, loss in sorted((model.get('distill_losses') or {}).items()):
        options = {k: v for k, v in dict(loss).items()
                   if k not in _LOSS_BOOKKEEPING}
        setup[f'distill_losses.{name}'] = ', '.join(
            f'{k}={options[k]!r}' for k in sorted(options))
    return setup


def checkpoint_setup(filename: str) -> Optional[Dict[str, str]]:
    """The setup of the config stored in a checkpoint (``None`` if none).

    Raises:
        CorruptCheckpointError: The file is damaged.
    """
    problem = checkpoint_problem(filename)
    if problem is not None:
        raise CorruptCheckpointError(corrupt_message(filename, problem))
    try:
        checkpoint = torch.load(filename, map_location='cpu',
                                weights_only=True, mmap=_is_zip(filename))
    except Exception:  # noqa: BLE001 (the loader explains it when resuming)
        return None
    text = (checkpoint.get('meta') or {}).get('cfg') if isinstance(
        checkpoint, dict) else None
    if not text:
        return None
    try:
        return run_setup(Config.fromstring(text, '.py'))
    except Exception:  # noqa: BLE001 (e.g. a base config since moved)
        return None


def _is_zip(filename: str) -> bool:
    import zipfile
    return zipfile.is_zipfile(filename)


def setup_differences(stored: Dict[str, str],
                      current: Dict[str, str]) -> List[str]:
    """``'<key>: checkpoint <a> vs config <b>'`` for each differing key."""
    return [
        f'{key}: checkpoint {stored.get(key, "(none)")} vs this config '
        f'{current.get(key, "(none)")}'
        for key in sorted(set(stored) | set(current))
        if stored.get(key) != current.get(key)
    ]


def check_resume_setup(cfg: Config, filename: str) -> None:
    """Refuse to resume ``filename`` with a config of another setup.

    Raises:
        ValueError: The checkpoint was written for another model (pair),
            teacher checkpoint or distillation setup; the message names
            both sides and the override.
    """
    stored = checkpoint_setup(filename)
    if stored is None:
        return
    differences = setup_differences(stored, run_setup(cfg))
    if differences:
        raise ValueError(
            f'refusing to resume {osp.abspath(filename)!r}: it was written '
            'for another model pair or distillation setup than this config ('
            + '; '.join(differences) + '). Use another --work-dir for this '
            'config, or pass --resume-any-setup to resume it anyway.')
