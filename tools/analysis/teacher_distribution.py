# Copyright (c) mmgdkd contributors. All rights reserved.
"""Look at a teacher's predictive distribution, to choose GDKD's k and weights.

GDKD splits each row's classes (a sample, or a pixel at the decode head's
resolution) into the teacher's top-k and the rest. This tool runs the
teacher over a data split, keeps a uniform random sample of rows (seeded,
at most ``--max-rows``) and writes, to ``--out``:

- ``top1_hist.png``: histogram of the top-1 probability;
- ``topk_mass.png``: the mean cumulative top-k mass for k = 1..C with
  10-90 percentile and interquartile bands, and the mass left outside the
  top-k (log scale);
- ``adaptive_k_hist.png``: histogram of the per-row adaptive k of the
  ratio rule (``GDKDLoss(strategy='adaptive')``, docs/losses.md;
  ``--ratio``);
- ``per_class.png``: per ground-truth class mean top-1 probability, mean
  top-k mass and teacher accuracy, and the per-class k of two rules;
- ``stats.json``: the same numbers, a suggested k with its rule and the
  per-class k; a short summary is printed.

Probabilities are ``softmax(logits / T)`` with ``T = --temperature`` (by
default the distillation loss's temperature in a distillation config, else
1). The model is the teacher of a ``SegDistiller``/``ClsDistiller`` config
(``model.teacher``; weights from ``--checkpoint`` or ``model.teacher_ckpt``)
or a plain MMSeg/MMPretrain model config (``--checkpoint`` required).

Examples::

    python tools/analysis/teacher_distribution.py \
        configs/gdkd/pspnet_r101_r18_cityscapes.py --max-rows 200000
    python tools/analysis/teacher_distribution.py \
        configs/cifar_teachers/resnet32x4_240e_cifar100.py \
        --checkpoint checkpoints/cifar_teachers/resnet32x4.pth \
        --split test --temperature 4
"""
import argparse
from typing import Dict, List, Optional

import mmgdkd  # noqa: F401  (compat shims + registration, before the hosts)
from mmengine.config import DictAction

from mmgdkd.analysis.teacher_report import analyse_teacher
from mmgdkd.analysis.teacher_rows import SPLITS
from mmgdkd.utils.known_warnings import silence_known_deprecations


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Statistics and figures of a teacher\'s predictive '
        'distribution (top-1 probability, top-k mass, adaptive k, per '
        'class), to choose GDKD\'s k')
    parser.add_argument(
        'config', help='distillation config (its teacher is analysed) or a '
        'plain MMSeg/MMPretrain model config')
    parser.add_argument(
        '--checkpoint', help='teacher weights; default: the distillation '
        'config\'s model.teacher_ckpt (required for a plain model config)')
    parser.add_argument(
        '--teacher-index', type=int, default=None,
        help='for a config with an ensemble of teachers: which one to '
        'analyse, counted from 1 (teacher1, teacher2, ... in the logs)')
    parser.add_argument(
        '--split', choices=SPLITS, default='val',
        help='which <split>_dataloader of the config to run over')
    parser.add_argument(
        '--temperature', type=float, default=None,
        help='T of softmax(logits / T); default: the temperature of the '
        'config\'s distillation loss, else 1')
    parser.add_argument(
        '--ratio', type=float, default=2.0,
        help='jump ratio r of the adaptive-k rule of GDKDLoss(strategy='
        '"adaptive"): per row, the first of the ascending teacher '
        'probabilities that is at least r times the mean of itself and '
        'the smaller ones starts the top group (docs/losses.md)')
    parser.add_argument(
        '--max-k', type=int, default=None,
        help='cap of the adaptive k (default C-1, as GDKDLoss)')
    parser.add_argument(
        '--mass-threshold', type=float, default=0.95,
        help='suggested k = the smallest k whose mean top-k mass reaches '
        'this')
    parser.add_argument(
        '--k', type=int, default=None,
        help='k at which per-class top-k mass is reported; default: the '
        'config\'s GDKD k, else the suggested k')
    parser.add_argument(
        '--max-rows', type=int, default=200000,
        help='rows (pixels/samples) kept: a uniform random sample of all '
        'valid rows; memory is about max_rows * C * 12 bytes')
    parser.add_argument(
        '--max-samples', type=int, default=None,
        help='stop after this many images/samples (a random subset, '
        'seeded); default: the whole split')
    parser.add_argument(
        '--bins', type=int, default=20, help='bins of the top-1 histogram')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--out', help='output directory (default: '
        'work_dirs/teacher_distribution/<config name>)')
    parser.add_argument(
        '--no-progress', action='store_true', help='no progress bar')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings in the config (key=value pairs)')
    args = parser.parse_args(argv)
    if args.max_rows < 1:
        parser.error(f'--max-rows must be >= 1, got {args.max_rows}')
    if args.max_samples is not None and args.max_samples < 1:
        parser.error(f'--max-samples must be >= 1, got {args.max_samples}')
    if args.temperature is not None and args.temperature <= 0:
        parser.error(f'--temperature must be > 0, got {args.temperature}')
    if args.ratio <= 0:
        parser.error(f'--ratio must be > 0, got {args.ratio}')
    if not 0 < args.mass_threshold <= 1:
        parser.error('--mass-threshold must be in (0, 1], got '
                     f'{args.mass_threshold}')
    if args.bins < 1:
        parser.error(f'--bins must be >= 1, got {args.bins}')
    return args


def main(argv: Optional[List[str]] = None) -> Dict:
    silence_known_deprecations()
    args = vars(parse_args(argv))
    args['progress'] = not args.pop('no_progress')
    return analyse_teacher(**args)


if __name__ == '__main__':
    main()
