# Copyright (c) mmgdkd contributors. All rights reserved.
"""Config adjustments shared by ``tools/train.py`` and ``tools/test.py``."""
import os.path as osp
from typing import Any

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from ..models.distillers.utils import load_model_cfg


def is_distiller_cfg(model_cfg: dict) -> bool:
    """Whether a model config is a distiller (has a student and a teacher)."""
    return isinstance(model_cfg, dict) and 'student' in model_cfg and \
        'teacher' in model_cfg


def materialize_distiller_cfg(cfg: Config) -> None:
    """Expand ``cfg_path`` student/teacher specs into full model dicts.

    The dumped config in the work dir then shows the exact networks, and
    later passes (e.g. :func:`replace_sync_bn`) see every layer.
    """
    if is_distiller_cfg(cfg.model):
        cfg.model.student = load_model_cfg(cfg.model.student)
        teacher = cfg.model.teacher
        cfg.model.teacher = [load_model_cfg(t) for t in teacher] \
            if isinstance(teacher, (list, tuple)) else load_model_cfg(teacher)


def default_work_dir(config_path: str, root: str = './work_dirs') -> str:
    """``work_dirs/<folder>/<name>`` for ``configs/<folder>/<name>.py``.

    The GDKD, DKD and KD configs of one model pair share a file name; the
    algorithm folder keeps their runs (and auto-resume) apart. A config
    outside a ``configs/<folder>/`` tree gets ``work_dirs/<name>``.
    """
    name = osp.splitext(osp.basename(config_path))[0]
    folder = osp.dirname(osp.abspath(config_path))
    if osp.basename(osp.dirname(folder)) == 'configs':
        return osp.join(root, osp.basename(folder), name)
    return osp.join(root, name)


def student_cfg(cfg: Config) -> bool:
    """Replace a distiller model by its student (in place).

    Evaluating a distilled checkpoint needs the student only; the teacher
    (and its checkpoint download) is skipped. The checkpoint holds plain
    student keys, so it loads as is.

    Returns:
        bool: Whether the model was a distiller.
    """
    if not is_distiller_cfg(cfg.model):
        return False
    model = load_model_cfg(cfg.model.student)
    if cfg.model.get('data_preprocessor') is not None:
        model.data_preprocessor = cfg.model.data_preprocessor
    cfg.model = model
    return True


def replace_sync_bn(node: Any) -> int:
    """Turn every ``dict(type='SyncBN')`` under ``node`` into ``BN``.

    Returns:
        int: How many norm configs were changed.
    """
    changed = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            changed += 1
        for value in node.values():
            changed += replace_sync_bn(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            changed += replace_sync_bn(value)
    return changed


def prepare_cpu_distributed(cfg: Config) -> None:
    """Make a ``--launcher pytorch/slurm`` run work on machines without CUDA.

    Without CUDA, DDP must not get ``device_ids`` and SyncBN cannot run, so
    the wrapper gets ``device_ids=None`` and SyncBN becomes BN. A no-op for
    non-distributed runs and on CUDA machines.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    wrapper = ConfigDict(cfg.get('model_wrapper_cfg') or
                         dict(type='MMDistributedDataParallel'))
    wrapper.device_ids = None
    cfg.model_wrapper_cfg = wrapper
    materialize_distiller_cfg(cfg)
    if replace_sync_bn(cfg.model):
        print_log('No CUDA: SyncBN replaced by BN for CPU distributed '
                  'training', logger='current')


def teardown_distributed() -> None:
    """Destroy the default process group, if any, after a run.

    mmengine leaves it to interpreter exit, where the backend's threads are
    torn down in arbitrary order: a gloo rank can then abort ("terminate
    called without an active exception") after a finished run. Every rank
    waits for the others first, so none exits while a peer still talks.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
