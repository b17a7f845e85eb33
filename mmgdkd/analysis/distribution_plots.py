# Copyright (c) mmgdkd contributors. All rights reserved.
"""Figures of :func:`~mmgdkd.analysis.distribution_stats` results."""
import json
import os
import os.path as osp
from typing import Dict

import numpy as np

from .figures import subplots

FIGURES = dict(
    top1='top1_hist.png',
    topk_mass='topk_mass.png',
    adaptive_k='adaptive_k_hist.png',
    per_class='per_class.png')


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
    fig, ax = subplots(figsize=(7.5, 4.5))
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


def plot_topk_mass(stats: Dict, path: str) -> None:
    mass = stats['topk_mass']
    k = np.asarray(mass['k'])
    get = {key: np.asarray(mass[key]) for key in mass if key != 'k'}
    sug = stats['suggested_k']
    ref = stats['k_ref']
    num_classes = stats['num_classes']
    fig, (ax, ax2) = subplots(1, 2, figsize=(13, 4.8))
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


def plot_adaptive_k(stats: Dict, path: str) -> None:
    ak = stats['adaptive_k']
    ks = np.asarray(ak['k'])
    counts = np.asarray(ak['counts'], dtype=np.float64)
    share = 100 * counts / max(counts.sum(), 1)
    last = int(ks[counts > 0].max()) if counts.any() else 1
    shown = ks <= max(last + 1, min(ak['max_k'], 5))
    fig, ax = subplots(figsize=(7.5, 4.5))
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
    fig, (ax, ax2) = subplots(
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
