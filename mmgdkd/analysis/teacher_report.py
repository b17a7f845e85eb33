# Copyright (c) mmgdkd contributors. All rights reserved.
"""A teacher's predictive distribution over a data split, end to end:
build the teacher, collect rows, compute the statistics, write the figures
and ``stats.json`` (``tools/analysis/teacher_distribution.py``)."""
import os.path as osp
import warnings
from typing import Dict, Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope

from .distribution import RowReservoir, distribution_stats, format_summary
from .distribution_plots import write_outputs
from .teacher_rows import (build_loader, build_teacher, collect_rows,
                           distill_loss_settings)


def analyse_teacher(config: str,
                    checkpoint: Optional[str] = None,
                    teacher_index: Optional[int] = None,
                    split: str = 'val',
                    temperature: Optional[float] = None,
                    ratio: float = 2.0,
                    max_k: Optional[int] = None,
                    mass_threshold: float = 0.95,
                    k: Optional[int] = None,
                    max_rows: int = 200000,
                    max_samples: Optional[int] = None,
                    bins: int = 20,
                    seed: int = 0,
                    out: Optional[str] = None,
                    progress: bool = True,
                    cfg_options: Optional[dict] = None) -> Dict:
    """Statistics of the teacher of ``config`` over ``split``.

    The arguments are the tool's options (see its ``--help``); ``out``
    defaults to ``work_dirs/teacher_distribution/<config name>``.

    Returns:
        dict: The statistics written to ``stats.json`` (with ``meta``).
    """
    if not osp.isfile(config):
        raise FileNotFoundError(f'config {config!r} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options is not None:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('model') is None:
        raise ValueError(f'{config!r} defines no model')
    out_dir = out or osp.join(
        'work_dirs', 'teacher_distribution',
        osp.splitext(osp.basename(config))[0])

    teacher = build_teacher(cfg, config, checkpoint, teacher_index)
    init_default_scope(teacher.scope)
    cfg_temperature, cfg_k, loss_name = distill_loss_settings(cfg)
    if temperature is not None:
        temperature, t_source = temperature, '--temperature'
    elif cfg_temperature is not None:
        temperature = cfg_temperature
        t_source = f'model.distill_losses.{loss_name}.temperature'
    else:
        temperature, t_source = 1.0, 'default'
    if k is not None:
        k_ref, k_source = k, '--k'
    elif cfg_k is not None:
        k_ref, k_source = cfg_k, f'config {loss_name}.k'
    else:
        k_ref, k_source = None, None

    torch.manual_seed(seed)
    loader = build_loader(cfg, split, seed,
                          shuffle=max_samples is not None)
    dataset = loader.dataset
    total = len(dataset) if max_samples is None else min(
        max_samples, len(dataset))
    print_log(f'Running the teacher ({teacher.source}) over {total} '
              f'{split} samples', logger='current')
    reservoir = RowReservoir(max_rows, seed=seed)
    samples, num_classes = collect_rows(
        teacher, loader, reservoir, max_samples,
        progress=progress, total=total)
    if len(reservoir) == 0:
        raise ValueError(
            f'no valid rows in the {split} split ({samples} samples): '
            'every label is the ignore index?' if samples else
            f'the {split} split is empty')

    class_names = list(dataset.metainfo.get('classes') or [])
    if class_names and len(class_names) != num_classes:
        warnings.warn(f'the dataset has {len(class_names)} class names but '
                      f'the teacher predicts {num_classes} classes; using '
                      'class indices')
        class_names = None
    if k_ref is not None and not 1 <= k_ref < num_classes:
        raise ValueError(f'{k_source} k={k_ref} is not in [1, C-1] = '
                         f'[1, {num_classes - 1}]')
    stats = distribution_stats(
        reservoir.logits,
        reservoir.labels,
        temperature=temperature,
        ratio=ratio,
        max_k=max_k,
        mass_threshold=mass_threshold,
        num_bins=bins,
        class_names=class_names or None,
        k_ref=k_ref,
        k_ref_source=k_source,
        rows_seen=reservoir.seen)
    stats['meta'] = dict(
        config=config,
        checkpoint=teacher.checkpoint,
        model=teacher.source,
        task=teacher.task,
        row_kind='pixels' if teacher.task == 'seg' else 'samples',
        rows_from=('pixels at the decode head\'s resolution, labels '
                   'nearest-resized, ignore_index '
                   f'{teacher.ignore_index} excluded'
                   if teacher.task == 'seg' else 'one row per sample'),
        split=split,
        samples=samples,
        max_rows=max_rows,
        seed=seed,
        temperature_source=t_source)
    write_outputs(stats, out_dir)
    print(format_summary(stats))
    print(f'Figures and stats.json written to {out_dir}')
