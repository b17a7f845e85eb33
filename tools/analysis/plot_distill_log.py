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
import os.path as osp
from typing import List, Optional

import mmgdkd  # noqa: F401  (compat shims, before any host import)
from mmgdkd.analysis.distill_log import (auto_panels, key_panels, load_run,
                                         plot, val_metric)
from mmgdkd.utils.known_warnings import silence_known_deprecations


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
