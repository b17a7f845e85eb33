# Copyright (c) mmgdkd contributors. All rights reserved.
"""Plot the losses and the validation metric of distillation runs.

Reads mmengine's scalar logs, ``RUN_DIR/<timestamp>/vis_data/scalars.json``
(JSON lines). A resumed run appends a new timestamp directory: all of them
are merged by iteration (a later directory wins where they overlap), or
only the latest one with ``--latest``. Plotted against the iteration, one
panel per quantity, several runs overlaid (one colour per run):

- the student's task losses (``student.decode.loss_ce``, ``student.loss``;
  ``decode.loss_ce``/``loss`` for plain MMSeg/MMPretrain runs), compared
  across distilled and plain runs under the same name;
- the total loss of distillation runs;
- the distillation losses per head (``distill.<tap>.loss_*``);
- their logged components per head (``distill.<tap>.gdkd_high``,
  ``gdkd_low_top``, ``gdkd_low_other``; DKD's ``dkd_tckd``/``dkd_nckd``),
  one line style per component;
- the warm-up factor, if it is not constantly 1;
- the validation metric (``mIoU`` for segmentation, ``accuracy/top1`` for
  classification) against the iteration, or the epoch for by-epoch runs.

``--keys`` replaces the automatic panels by one panel per pattern (shell
wildcards, e.g. ``'distill.decode.*'`` or ``mIoU``).

Example::

    python tools/analysis/plot_distill_log.py work_dirs/gdkd_run \
        work_dirs/kd_run work_dirs/baseline --labels GDKD KD baseline \
        --out compare.png
"""
import argparse
import fnmatch
import glob
import json
import math
import os
import os.path as osp
import warnings
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import mmgdkd  # noqa: F401,I001  (compat shims, before any host import)
from mmgdkd.utils.known_warnings import silence_known_deprecations

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

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


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Plot task/distillation losses, GDKD components and the '
        'validation metric of mmengine runs')
    parser.add_argument(
        'run_dirs', nargs='+', metavar='RUN_DIR',
        help='work dir of a run (holding <timestamp>/vis_data/scalars.json),'
        ' a timestamp dir or a scalars.json file')
    parser.add_argument(
        '--out', help='output PNG (default: RUN_DIR/distill_log.png of the '
        'first run)')
    parser.add_argument(
        '--labels', nargs='+', help='legend label per run (default: the '
        'run directory names)')
    parser.add_argument(
        '--keys', nargs='+', help='plot these keys instead of the automatic '
        'panels: one panel per pattern (shell wildcards)')
    parser.add_argument(
        '--latest', action='store_true', help='read only the latest '
        'timestamp dir of each run (default: merge all, for resumed runs)')
    parser.add_argument(
        '--smooth', type=int, default=1,
        help='moving-average window over logged training points')
    parser.add_argument(
        '--logy', action='store_true', help='log scale for the loss panels')
    parser.add_argument(
        '--cols', type=int, default=None, help='panels per row (default '
        'up to 3)')
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.run_dirs):
        parser.error(f'{len(args.labels)} --labels for '
                     f'{len(args.run_dirs)} run dirs')
    if args.smooth < 1:
        parser.error(f'--smooth must be >= 1, got {args.smooth}')
    if args.cols is not None and args.cols < 1:
        parser.error(f'--cols must be >= 1, got {args.cols}')
    return args


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------
# Figure
# ---------------------------------------------------------------------------
def plot(runs: Sequence[RunLog], panels: Sequence[Panel], out: str,
         cols: Optional[int] = None, logy: bool = False) -> None:
    if not panels:
        raise ValueError('nothing to plot: no known keys in '
                         + ', '.join(repr(r.run_dir) for r in runs))
    num = len(panels)
    cols = cols or min(3, num)
    rows = math.ceil(num / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.4 * cols, 3.9 * rows),
                             squeeze=False)
    colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
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
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> str:
    silence_known_deprecations()
    args = parse_args(argv)
    labels = args.labels or [None] * len(args.run_dirs)
    runs = [load_run(d, label, args.latest)
            for d, label in zip(args.run_dirs, labels)]
    panels = key_panels(runs, args.keys, args.smooth) if args.keys else \
        auto_panels(runs, args.smooth)
    out = args.out
    if out is None:
        first = args.run_dirs[0]
        base = osp.dirname(first) if osp.isfile(first) else first
        out = osp.join(base, 'distill_log.png')
    plot(runs, panels, out, args.cols, args.logy)
    for run in runs:
        iters = [x for x, _ in run.train]
        span = f'iterations {iters[0]}-{iters[-1]}' if iters else \
            'no training records'
        metric = val_metric([run])
        last = ''
        if metric is not None and run.val:
            step, record = run.val[-1]
            if metric in record:
                last = (f', last {metric} {record[metric]} at '
                        f'{run.val_unit} {step}')
        print(f'{run.label}: {len(run.files)} log file(s), {span}{last}')
    print(f'{len(panels)} panels written to {out}')
    return out


if __name__ == '__main__':
    try:
        main()
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f'plot_distill_log.py: error: {error}')
