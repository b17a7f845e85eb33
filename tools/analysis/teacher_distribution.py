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
import json
import os
import os.path as osp
import warnings
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

import mmgdkd  # noqa: F401,I001  (compat shims + registration, before hosts)

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.model import revert_sync_batchnorm  # noqa: E402
from mmengine.registry import DefaultScope, init_default_scope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.utils import ProgressBar  # noqa: E402

from mmgdkd.analysis import (RowReservoir, distribution_stats,  # noqa: E402
                             format_summary, seg_rows)
from mmgdkd.models.distillers.utils import (  # noqa: E402
    load_model_cfg, load_teacher_checkpoint)
from mmgdkd.utils import is_distiller_cfg  # noqa: E402
from mmgdkd.utils.known_warnings import silence_known_deprecations  # noqa: E402

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
FIGURES = dict(
    top1='top1_hist.png',
    topk_mass='topk_mass.png',
    adaptive_k='adaptive_k_hist.png',
    per_class='per_class.png')


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


# ---------------------------------------------------------------------------
# The teacher
# ---------------------------------------------------------------------------
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


def build_teacher(cfg: Config, config_path: str,
                  checkpoint: Optional[str] = None) -> Teacher:
    """The teacher (or plain model) of a config, with weights, in eval mode.

    For a distiller config the teacher is ``model.teacher`` and the batches
    are preprocessed as in training: ``model.data_preprocessor``, else the
    top-level ``data_preprocessor`` (the runner's default), else the
    student's.
    """
    scope = host_scope(cfg, config_path)
    models = host_models(scope)
    if is_distiller_cfg(cfg.model):
        model_cfg = load_model_cfg(cfg.model.teacher)
        checkpoint = checkpoint or cfg.model.get('teacher_ckpt')
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


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------
def _subtitle(stats: Dict) -> str:
    rows = stats['rows']
    seen = stats['rows_seen']
    kind = stats.get('meta', {}).get('row_kind', 'rows')
    sample = f'{rows:,} {kind}' + (f' (sampled from {seen:,})'
                                   if seen != rows else '')
    return (f'{sample}, {stats["num_classes"]} classes, '
            f'T={stats["temperature"]:g}')


def plot_top1(stats: Dict, path: str) -> None:
    top1 = stats['top1']
    edges = np.asarray(top1['bin_edges'])
    counts = np.asarray(top1['counts'], dtype=np.float64)
    share = 100 * counts / max(counts.sum(), 1)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ax.bar(edges[:-1], share, width=np.diff(edges), align='edge',
           color='tab:blue', edgecolor='white', label='rows')
    ax.axvline(top1['mean'], color='tab:red', lw=1.5,
               label=f'mean {top1["mean"]:.3f}')
    ax.axvline(top1['median'], color='tab:orange', lw=1.5, ls='--',
               label=f'median {top1["median"]:.3f}')
    ax.axvline(1 / stats['num_classes'], color='grey', lw=1, ls=':',
               label=f'uniform 1/C = {1 / stats["num_classes"]:.3f}')
    ax.set_xlim(0, 1)
    ax.set_xlabel('top-1 probability  max softmax(z / T)')
    ax.set_ylabel('% of rows')
    ax.set_title(f'Teacher top-1 probability\n{_subtitle(stats)}',
                 fontsize=11)
    ax.legend(loc='upper left', fontsize=9)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_topk_mass(stats: Dict, path: str) -> None:
    mass = stats['topk_mass']
    k = np.asarray(mass['k'])
    get = {key: np.asarray(mass[key]) for key in mass if key != 'k'}
    sug = stats['suggested_k']
    ref = stats['k_ref']
    num_classes = stats['num_classes']
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    ax.fill_between(k, get['p10'], get['p90'], color='tab:blue', alpha=0.15,
                    label='10-90 percentile')
    ax.fill_between(k, get['p25'], get['p75'], color='tab:blue', alpha=0.35,
                    label='interquartile range')
    ax.plot(k, get['p50'], color='tab:blue', ls='--', lw=1, label='median')
    marker = 'o' if num_classes <= 40 else None
    ax.plot(k, get['mean'], color='tab:blue', marker=marker, ms=3, lw=1.8,
            label='mean')
    ax.axhline(sug['mass_threshold'], color='grey', ls=':', lw=1,
               label=f'threshold {sug["mass_threshold"]:g}')
    ax.axvline(sug['k'], color='tab:red', lw=1.2,
               label=f'suggested k = {sug["k"]}')
    if ref['k'] != sug['k']:
        ax.axvline(ref['k'], color='tab:green', lw=1.2, ls='--',
                   label=f'k = {ref["k"]} ({ref["source"]})')
    ax.set_ylim(max(0.0, float(get['p10'].min()) - 0.05), 1.01)
    ax.set_xlabel('k (number of top classes)')
    ax.set_ylabel('probability mass of the top-k classes')
    ax.set_title('Cumulative top-k mass b_t(top-k)', fontsize=11)
    ax.legend(loc='lower right', fontsize=8)

    # The mass left outside the top-k: KD's implicit weight on the rest.
    # Its 90th percentile is 1 - the 10th percentile of the top-k mass.
    others = (('mean', 1 - get['mean'], dict(marker=marker, ms=3, lw=1.8)),
              ('median', 1 - get['p50'], dict(ls='--', lw=1)),
              ('90th percentile of rows', 1 - get['p10'], dict(ls=':',
                                                               lw=1.2)))
    for label, other, style in others:
        # k = C leaves nothing outside; clip fp noise for the log scale.
        ax2.plot(k[:-1], np.clip(other[:-1], 1e-7, 1), color='tab:purple',
                 label=label, **style)
    ax2.axvline(sug['k'], color='tab:red', lw=1.2,
                label=f'suggested k = {sug["k"]}')
    if ref['k'] != sug['k']:
        ax2.axvline(ref['k'], color='tab:green', lw=1.2, ls='--',
                    label=f'k = {ref["k"]} ({ref["source"]})')
    ax2.axhline(1 - sug['mass_threshold'], color='grey', ls=':', lw=1,
                label=f'1 - threshold = {1 - sug["mass_threshold"]:.3g}')
    ax2.set_yscale('log')
    ax2.set_xlabel('k (number of top classes)')
    ax2.set_ylabel('mass outside the top-k, 1 - b_t(top-k)')
    ax2.set_title('Mass of the other classes (log scale)', fontsize=11)
    ax2.legend(loc='upper right', fontsize=8)
    for axis in (ax, ax2):
        if num_classes > 40:
            axis.set_xscale('log')
        else:
            axis.set_xticks(k)
        axis.set_xlim(0.5, num_classes + 0.5)
        axis.grid(alpha=0.3)
    fig.suptitle(f'Teacher top-k mass\n{_subtitle(stats)}', fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_adaptive_k(stats: Dict, path: str) -> None:
    ak = stats['adaptive_k']
    ks = np.asarray(ak['k'])
    counts = np.asarray(ak['counts'], dtype=np.float64)
    share = 100 * counts / max(counts.sum(), 1)
    last = int(ks[counts > 0].max()) if counts.any() else 1
    shown = ks <= max(last + 1, min(ak['max_k'], 5))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    bars = ax.bar(ks[shown], share[shown], color='tab:green', width=0.8)
    for bar, n in zip(bars, counts[shown]):
        if n and shown.sum() <= 30:
            ax.annotate(f'{int(n):,}', (bar.get_x() + bar.get_width() / 2,
                                        bar.get_height()),
                        ha='center', va='bottom', fontsize=8)
    ax.axvline(ak['mean'], color='tab:red', lw=1.2, ls='--', alpha=0.8,
               label=f'mean {ak["mean"]:.2f}')
    ax.set_xticks(ks[shown] if shown.sum() <= 30 else
                  ks[shown][::max(1, int(shown.sum()) // 20)])
    ax.set_xlabel(f'adaptive k (capped at {ak["max_k"]})')
    ax.set_ylabel('% of rows (count on top)')
    ax.set_title(
        f'Adaptive k per row (ratio rule, r={ak["ratio"]:g})'
        f'\n{_subtitle(stats)}', fontsize=11)
    ax.legend(fontsize=9)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _short(n: int) -> str:
    for div, unit in ((1e6, 'M'), (1e3, 'k')):
        if n >= div:
            return f'{n / div:.3g}{unit}'
    return str(n)


def plot_per_class(stats: Dict, path: str) -> None:
    per = stats['per_class']
    num = len(per)
    ref, sug = stats['k_ref'], stats['suggested_k']
    x = np.arange(num)

    def values(key):
        return np.asarray([np.nan if p[key] is None else p[key] for p in per],
                          dtype=np.float64)

    width = min(30.0, max(9.0, 0.5 * num + 2))
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(width, 9), sharex=True,
        gridspec_kw=dict(height_ratios=[3, 2]))
    bar_w = 0.4
    ax.bar(x - bar_w / 2, values('mean_top1'), bar_w, color='tab:blue',
           label='mean top-1 probability')
    ax.bar(x + bar_w / 2, values('mean_topk_mass'), bar_w,
           color='tab:orange',
           label=f'mean top-{ref["k"]} mass (k: {ref["source"]})')
    ax.plot(x, values('accuracy'), 'o', color='black', ms=5,
            label='teacher accuracy (recall)')
    ax.axhline(sug['mass_threshold'], color='grey', ls=':', lw=1,
               label=f'mass threshold {sug["mass_threshold"]:g}')
    for i, p in enumerate(per):
        if not p['rows']:
            ax.text(i, 0.02, 'no rows', rotation=90, ha='center',
                    va='bottom', fontsize=8, color='grey')
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel('probability / accuracy')
    ax.legend(loc='lower center', bbox_to_anchor=(0.5, 1.0), ncol=4,
              fontsize=8, frameon=False)
    ax.grid(axis='y', alpha=0.3)

    k_mass, k_ratio = values('k_mass'), values('k_ratio')
    ax2.bar(x, k_mass, 0.6, color='tab:purple', alpha=0.8,
            label=f'k by the mass rule (threshold {sug["mass_threshold"]:g})')
    ax2.plot(x, k_ratio, 'D', color='tab:green', ms=6,
             label='k by the ratio rule on the mean prediction '
             f'(r={stats["adaptive_k"]["ratio"]:g})')
    ax2.axhline(sug['k'], color='tab:red', lw=1.2,
                label=f'suggested k = {sug["k"]} (all rows)')
    finite = np.concatenate([k_mass[~np.isnan(k_mass)],
                             k_ratio[~np.isnan(k_ratio)], [sug['k']]])
    ax2.set_ylim(0, finite.max() + 1)
    ax2.set_ylabel('per-class k')
    ax2.yaxis.get_major_locator().set_params(integer=True)
    ax2.legend(loc='lower center', bbox_to_anchor=(0.5, 1.0), ncol=3,
               fontsize=8, frameon=False)
    ax2.grid(axis='y', alpha=0.3)
    if num <= 60:
        ax2.set_xticks(x)
        ax2.set_xticklabels(
            [f'{p["name"]} ({_short(p["rows"])})' for p in per],
            rotation=45, ha='right', fontsize=8)
        ax2.set_xlabel('ground-truth class (rows)')
    else:
        ax2.set_xlabel('ground-truth class index')
    ax2.set_xlim(-0.6, num - 0.4)
    fig.suptitle(f'Teacher per ground-truth class\n{_subtitle(stats)}',
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_figures(stats: Dict, out_dir: str) -> Dict[str, str]:
    """All figures from ``stats`` into ``out_dir``; name -> path."""
    paths = {name: osp.join(out_dir, fname)
             for name, fname in FIGURES.items()}
    plot_top1(stats, paths['top1'])
    plot_topk_mass(stats, paths['topk_mass'])
    plot_adaptive_k(stats, paths['adaptive_k'])
    plot_per_class(stats, paths['per_class'])
    return paths


def write_outputs(stats: Dict, out_dir: str) -> Dict[str, str]:
    """``stats.json`` and the figures; returns the figure paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = write_figures(stats, out_dir)
    stats['figures'] = {name: osp.basename(p) for name, p in paths.items()}
    with open(osp.join(out_dir, 'stats.json'), 'w', encoding='utf-8') as f:
        json.dump(stats, f, indent=1)
    return paths


# ---------------------------------------------------------------------------
def main(argv: Optional[List[str]] = None) -> Dict:
    silence_known_deprecations()
    args = parse_args(argv)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config {args.config!r} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('model') is None:
        raise ValueError(f'{args.config!r} defines no model')
    out_dir = args.out or osp.join(
        'work_dirs', 'teacher_distribution',
        osp.splitext(osp.basename(args.config))[0])

    teacher = build_teacher(cfg, args.config, args.checkpoint)
    init_default_scope(teacher.scope)
    cfg_temperature, cfg_k, loss_name = distill_loss_settings(cfg)
    if args.temperature is not None:
        temperature, t_source = args.temperature, '--temperature'
    elif cfg_temperature is not None:
        temperature = cfg_temperature
        t_source = f'model.distill_losses.{loss_name}.temperature'
    else:
        temperature, t_source = 1.0, 'default'
    if args.k is not None:
        k_ref, k_source = args.k, '--k'
    elif cfg_k is not None:
        k_ref, k_source = cfg_k, f'config {loss_name}.k'
    else:
        k_ref, k_source = None, None

    torch.manual_seed(args.seed)
    loader = build_loader(cfg, args.split, args.seed,
                          shuffle=args.max_samples is not None)
    dataset = loader.dataset
    total = len(dataset) if args.max_samples is None else min(
        args.max_samples, len(dataset))
    print_log(f'Running the teacher ({teacher.source}) over {total} '
              f'{args.split} samples', logger='current')
    reservoir = RowReservoir(args.max_rows, seed=args.seed)
    samples, num_classes = collect_rows(
        teacher, loader, reservoir, args.max_samples,
        progress=not args.no_progress, total=total)
    if len(reservoir) == 0:
        raise ValueError(
            f'no valid rows in the {args.split} split ({samples} samples): '
            'every label is the ignore index?' if samples else
            f'the {args.split} split is empty')

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
        ratio=args.ratio,
        max_k=args.max_k,
        mass_threshold=args.mass_threshold,
        num_bins=args.bins,
        class_names=class_names or None,
        k_ref=k_ref,
        k_ref_source=k_source,
        rows_seen=reservoir.seen)
    stats['meta'] = dict(
        config=args.config,
        checkpoint=teacher.checkpoint,
        model=teacher.source,
        task=teacher.task,
        row_kind='pixels' if teacher.task == 'seg' else 'samples',
        rows_from=('pixels at the decode head\'s resolution, labels '
                   'nearest-resized, ignore_index '
                   f'{teacher.ignore_index} excluded'
                   if teacher.task == 'seg' else 'one row per sample'),
        split=args.split,
        samples=samples,
        max_rows=args.max_rows,
        seed=args.seed,
        temperature_source=t_source)
    write_outputs(stats, out_dir)
    print(format_summary(stats))
    print(f'Figures and stats.json written to {out_dir}')
    return stats


if __name__ == '__main__':
    main()
