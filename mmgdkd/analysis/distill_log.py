# Copyright (c) mmgdkd contributors. All rights reserved.
"""Distillation runs' scalar logs: read, merged and drawn as panels.

Reads mmengine's ``RUN_DIR/<timestamp>/vis_data/scalars.json`` (JSON lines;
the timestamp directories of a resumed run are merged by iteration), picks
the panels (task losses, total, distillation terms, their components, the
warm-up factor, the validation metric) and draws them
(``tools/analysis/plot_distill_log.py``).
"""
import fnmatch
import glob
import json
import math
import os
import os.path as osp
import warnings
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from matplotlib.ticker import MaxNLocator

from .figures import color_cycle, subplots

SCALARS = osp.join('vis_data', 'scalars.json')
#: Validation metrics plotted by default, in order of preference.
VAL_METRICS = ('mIoU', 'accuracy/top1', 'accuracy/top-1', 'mAcc', 'aAcc')
#: Keys of a validation record that are not metrics.
VAL_NOT_METRICS = ('step', 'time', 'data_time', 'iter', 'epoch')
LINE_STYLES = ('-', '--', ':', '-.')


class RunLog(NamedTuple):
    label: str
    run_dir: str
    files: List[str]
    train: List[Tuple[int, dict]]  # (iteration, record), sorted
    val: List[Tuple[int, dict]]  # (step, record), sorted
    val_unit: str  # 'iteration' or 'epoch'


class Line(NamedTuple):
    run: int
    name: str  # the key's label inside the panel
    x: np.ndarray
    y: np.ndarray


class Panel(NamedTuple):
    title: str
    xlabel: str
    ylabel: str
    lines: List[Line]


def find_scalar_files(run_dir: str, latest: bool = False) -> List[str]:
    """The ``scalars.json`` files of a run, oldest first.

    ``run_dir`` may be a work dir (``<timestamp>/vis_data/scalars.json``
    below it; mmengine's timestamps sort chronologically), one timestamp
    dir, or a ``scalars.json`` file.
    """
    if not osp.exists(run_dir):
        raise FileNotFoundError(f'run dir {run_dir!r} does not exist')
    if osp.isfile(run_dir):
        return [run_dir]
    own = osp.join(run_dir, SCALARS)
    if osp.isfile(own):
        return [own]
    files = sorted(glob.glob(osp.join(glob.escape(run_dir), '*', SCALARS)),
                   key=lambda p: osp.basename(osp.dirname(osp.dirname(p))))
    if not files:
        raise FileNotFoundError(
            f'no scalar log in run dir {run_dir!r}: expected '
            f'{osp.join(run_dir, "<timestamp>", SCALARS)} (written by '
            'mmengine\'s LoggerHook during training)')
    return files[-1:] if latest else files


def read_scalars(path: str) -> List[dict]:
    """Records of one JSON-lines file. A truncated last line (a run still
    writing) is skipped with a warning; a bad line elsewhere is an error."""
    with open(path, encoding='utf-8') as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                warnings.warn(f'{path}: skipping the incomplete last line '
                              f'{number}')
                continue
            raise ValueError(f'{path}, line {number}: not JSON ({err})')
        if isinstance(record, dict):
            records.append(record)
    return records


def load_run(run_dir: str, label: Optional[str] = None,
             latest: bool = False) -> RunLog:
    """Merge the scalar logs of a run by iteration (later files win)."""
    files = find_scalar_files(run_dir, latest)
    train: Dict[int, dict] = {}
    val: Dict[int, dict] = {}
    for path in files:
        for record in read_scalars(path):
            if 'iter' in record:
                train[int(record['iter'])] = record
            elif 'step' in record and any(
                    k not in VAL_NOT_METRICS for k in record):
                val[int(record['step'])] = record
    if not train and not val:
        raise ValueError(f'run dir {run_dir!r}: no training or validation '
                         f'records in {files}')
    epochs = [r['epoch'] for r in train.values() if 'epoch' in r]
    # By-epoch runs log validation at step = epoch (LoggerHook's default
    # log_metric_by_epoch=True), unless the steps exceed the epochs.
    val_unit = 'epoch' if epochs and val and max(val) <= max(epochs) + 1 \
        else 'iteration'
    if label is None:
        base = run_dir.rstrip('/\\')
        if osp.isfile(base):  # .../<timestamp>/vis_data/scalars.json
            base = osp.dirname(osp.dirname(osp.dirname(base)))
        label = osp.basename(osp.abspath(base))
    return RunLog(label, run_dir, files, sorted(train.items()),
                  sorted(val.items()), val_unit)


# ---------------------------------------------------------------------------
# Panels
# ---------------------------------------------------------------------------
def _keys(records: Sequence[Tuple[int, dict]]) -> List[str]:
    """Keys in first-seen order."""
    seen = {}
    for _, record in records:
        for key in record:
            seen.setdefault(key, None)
    return list(seen)


def _series(records: Sequence[Tuple[int, dict]], key: str,
            smooth: int = 1) -> Tuple[np.ndarray, np.ndarray]:
    pts = [(x, r[key]) for x, r in records
           if isinstance(r.get(key), (int, float))]
    x = np.asarray([p[0] for p in pts], dtype=np.float64)
    y = np.asarray([p[1] for p in pts], dtype=np.float64)
    if smooth > 1 and y.size:
        csum = np.cumsum(np.insert(y, 0, 0.0))
        idx = np.arange(1, y.size + 1)
        lo = np.maximum(idx - smooth, 0)
        y = (csum[idx] - csum[lo]) / (idx - lo)
    return x, y


def _is_loss(key: str) -> bool:
    return key.split('.')[-1].startswith('loss')


def task_loss_keys(keys: Sequence[str]) -> Dict[str, str]:
    """``{panel name: key}`` of the student's own losses.

    Distillation runs log them as ``student.<name>``; plain runs as
    ``<name>`` (MMSeg: ``decode.loss_ce``...), or only the total ``loss``
    (MMPretrain), which is then the task loss.
    """
    distilled = any(k.startswith('distill.') for k in keys)
    if distilled:
        return {k[len('student.'):]: k for k in keys
                if k.startswith('student.') and _is_loss(k)}
    found = {k: k for k in keys if _is_loss(k) and k != 'loss'}
    if not found and 'loss' in keys:
        found = {'loss': 'loss'}
    return found


def distill_keys(keys: Sequence[str]
                 ) -> Tuple[Dict[str, List[str]], Dict[Tuple[str, str],
                                                      List[str]]]:
    """Distillation losses per tap and their components per (tap, loss).

    ``distill.<tap>.loss_<name>`` is a loss; ``distill.<tap>.<name>_<part>``
    (for a logged ``loss_<name>`` of that tap) one of its components.
    """
    losses: Dict[str, List[str]] = {}
    parts: Dict[Tuple[str, str], List[str]] = {}
    split = [k.split('.', 2) for k in keys if k.startswith('distill.')]
    split = [s for s in split if len(s) == 3]
    for _, tap, name in split:
        if name.startswith('loss_'):
            losses.setdefault(tap, []).append(f'distill.{tap}.{name}')
    for _, tap, name in split:
        if name.startswith('loss_'):
            continue
        short, _, part = name.partition('_')
        if part and f'distill.{tap}.loss_{short}' in keys:
            parts.setdefault((tap, short), []).append(f'distill.{tap}.{name}')
    return losses, parts


def val_metric(runs: Sequence[RunLog]) -> Optional[str]:
    keys = set()
    for run in runs:
        keys.update(_keys(run.val))
    for metric in VAL_METRICS:
        if metric in keys:
            return metric
    others = sorted(k for k in keys if k not in VAL_NOT_METRICS)
    return others[0] if others else None


def _val_xlabel(runs: Sequence[RunLog]) -> str:
    units = {run.val_unit for run in runs if run.val}
    return units.pop() if len(units) == 1 else 'iteration or epoch (by-epoch'\
        ' runs)'


def auto_panels(runs: Sequence[RunLog], smooth: int = 1) -> List[Panel]:
    """The default panels (see the module docstring)."""
    order: Dict[str, Panel] = {}

    def add(pid, title, ylabel, line, xlabel='iteration'):
        if line.x.size == 0:
            return
        if pid not in order:
            order[pid] = Panel(title, xlabel, ylabel, [])
        order[pid].lines.append(line)

    for i, run in enumerate(runs):
        keys = _keys(run.train)
        for name, key in task_loss_keys(keys).items():
            add(f'task:{name}', f'student task loss: {name}', 'loss',
                Line(i, name, *_series(run.train, key, smooth)))
        if any(k.startswith('distill.') for k in keys) and 'loss' in keys:
            add('total', 'total loss (task + distillation)', 'loss',
                Line(i, 'loss', *_series(run.train, 'loss', smooth)))
    for i, run in enumerate(runs):
        losses, _ = distill_keys(_keys(run.train))
        for tap, tap_keys in losses.items():
            for key in tap_keys:
                add(f'distill:{tap}', f'distillation loss ({tap} head)',
                    'loss (weighted, warm-up applied)',
                    Line(i, key.split('.')[-1],
                         *_series(run.train, key, smooth)))
    for i, run in enumerate(runs):
        _, parts = distill_keys(_keys(run.train))
        for (tap, short), part_keys in parts.items():
            for key in part_keys:
                part = key.split('.')[-1][len(short) + 1:]
                add(f'parts:{tap}:{short}',
                    f'{short.upper()} components ({tap} head)',
                    'unweighted mean × T²',
                    Line(i, part, *_series(run.train, key, smooth)))
    for i, run in enumerate(runs):
        x, y = _series(run.train, 'distill.warmup_factor')
        if y.size and np.any(y != 1):
            add('warmup', 'distillation warm-up factor', 'factor',
                Line(i, 'warmup_factor', x, y))
    metric = val_metric(runs)
    if metric is not None:
        for i, run in enumerate(runs):
            add('val', f'validation {metric}', metric,
                Line(i, metric, *_series(run.val, metric)),
                xlabel=_val_xlabel(runs))
    return list(order.values())


def key_panels(runs: Sequence[RunLog], patterns: Sequence[str],
               smooth: int = 1) -> List[Panel]:
    """One panel per pattern, with every matching training or validation
    key of every run."""
    panels = []
    for pattern in patterns:
        lines, val_only = [], True
        for i, run in enumerate(runs):
            for records, is_val in ((run.train, False), (run.val, True)):
                for key in _keys(records):
                    if key not in ('step', 'iter', 'epoch') and \
                            fnmatch.fnmatchcase(key, pattern):
                        x, y = _series(records, key,
                                       1 if is_val else smooth)
                        if y.size:
                            lines.append(Line(i, key, x, y))
                            val_only &= is_val
        if not lines:
            warnings.warn(f'--keys {pattern!r} matches no logged key')
            continue
        xlabel = _val_xlabel(runs) if val_only else 'iteration'
        panels.append(Panel(pattern, xlabel, 'value', lines))
    return panels


def plot(runs: Sequence[RunLog], panels: Sequence[Panel], out: str,
         cols: Optional[int] = None, logy: bool = False) -> None:
    if not panels:
        raise ValueError('nothing to plot: no known keys in '
                         + ', '.join(repr(r.run_dir) for r in runs))
    num = len(panels)
    cols = cols or min(3, num)
    rows = math.ceil(num / cols)
    fig, axes = subplots(rows, cols, figsize=(5.4 * cols, 3.9 * rows),
                         squeeze=False)
    colors = color_cycle()
    for ax, panel in zip(axes.flat, panels):
        names = list(dict.fromkeys(line.name for line in panel.lines))
        many_runs = len({line.run for line in panel.lines}) > 1 or \
            len(runs) > 1
        for line in panel.lines:
            style = LINE_STYLES[names.index(line.name) % len(LINE_STYLES)]
            if len(names) == 1:
                label = runs[line.run].label
            elif many_runs:
                label = f'{runs[line.run].label}: {line.name}'
            else:
                label = line.name
            marker = 'o' if line.x.size <= 30 else None
            ax.plot(line.x, line.y, ls=style, marker=marker, ms=3, lw=1.4,
                    color=colors[line.run % len(colors)], label=label)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        if logy and panel.ylabel.startswith(('loss', 'unweighted')) and \
                all(np.all(line.y > 0) for line in panel.lines):
            ax.set_yscale('log')
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc='best')
    for ax in list(axes.flat)[num:]:
        ax.set_visible(False)
    fig.suptitle('Training log: ' + ', '.join(r.label for r in runs),
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    out_dir = osp.dirname(osp.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    fig.savefig(out, dpi=110)
