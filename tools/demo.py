# Copyright (c) mmgdkd contributors. All rights reserved.
"""``make demo``: distil a segmentor on generated Cityscapes-format data.

On a CPU, from nothing, in a few minutes:

1. write (or reuse) a small Cityscapes-format data set of procedural street
   scenes under ``--data-root``;
2. train, with ``tools/train.py`` and the configs of ``configs/demo`` (which
   inherit the real Cityscapes ones), a teacher PSPNet, then the student
   without distillation and the same student with GDKD (and KD, DKD), all
   from one seed and one initial student checkpoint;
3. report each model's mIoU/mAcc (MMSeg's ``IoUMetric`` in the val loop),
   parameters and inference time in ``results.md``/``results.json``, and draw
   a few val predictions side by side in ``predictions.png``.

Example::

    python tools/demo.py                    # what `make demo` runs
    python tools/demo.py --seed 1 --work-dir work_dirs/demo_seed1
    python tools/demo.py --quick --algos gdkd --data-root /tmp/d \
        --work-dir /tmp/w
"""
import argparse
import collections
import concurrent.futures
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
import warnings
from typing import List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'demo')
TEACHER_CONFIG = 'teacher_pspnet_r18w32_synthetic.py'
STUDENT_CONFIG = 'pspnet_r18w16_synthetic.py'
ALGO_CONFIG = '{}_pspnet_r18w32-r18w16_synthetic.py'
ALGOS = ('gdkd', 'kd', 'dkd')
LABELS = dict(
    teacher='teacher R18 w32', student='student R18 w16', gdkd='+ GDKD',
    kd='+ KD', dkd='+ DKD')
# (num_train, num_val) images of IMAGE_SIZE, which the configs expect. The
# data set's own seed is fixed: runs with another --seed see the same images.
DATA_SIZE = dict(full=(300, 100), quick=(8, 4))
IMAGE_SIZE = (128, 256)
DATA_SEED = 0
# --quick shortens the schedules, not the models: a pipeline check (tests).
QUICK_ITERS = 2
# Threads per run, fixed so that a run computes the same numbers on any
# machine (a conv's reductions depend on the thread count). On 2 cores two
# 1-thread students finish ~1.3x sooner than one 2-thread student after
# the other; the teacher, which the students wait for, takes both.
TEACHER_THREADS = 2
STUDENT_THREADS = 1
TRAIN_LINE = re.compile(r'Iter\(train\) \[\s*(\d+)/(\d+)\].*?eta: (\S+)')
VAL_LINE = re.compile(r'Iter\(val\) \[\d+/\d+\]\s+(aAcc.*)')


def parse_args(args: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Distil a PSPNet on generated Cityscapes-format data')
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument(
        '--quick', action='store_true',
        help=f'{DATA_SIZE["quick"][0]} train images, {QUICK_ITERS} '
        'iterations per run: checks the pipeline, measures nothing')
    parser.add_argument(
        '--algos', nargs='*', choices=ALGOS, default=list(ALGOS),
        help='distillation methods to run (the baseline always runs)')
    parser.add_argument(
        '--data-root',
        default=osp.join(REPO_ROOT, 'data', 'synthetic_cityscapes'),
        help='where the data set is generated or found (default: where the '
        'demo configs look, data/synthetic_cityscapes of the repository)')
    parser.add_argument(
        '--skip-data', action='store_true',
        help='use the data set under --data-root as it is')
    parser.add_argument(
        '--work-dir', default=osp.join(REPO_ROOT, 'work_dirs', 'demo'),
        help='one sub-directory per run, with its logs and checkpoints '
        '(default: work_dirs/demo of the repository)')
    parser.add_argument(
        '--jobs', type=int, default=max(1, min(len(ALGOS) + 1,
                                               os.cpu_count() or 1)),
        help='student runs at a time, one thread each (default: one per '
        'core, at most 4); the numbers do not depend on it')
    parser.add_argument(
        '--out', help='where results.md/json and predictions.png go '
        '(default: --work-dir)')
    return parser.parse_args(args)


def log(msg: str) -> None:
    print(msg, flush=True)


def quiet_mm_logs() -> None:
    """Keep the demo's console to its progress lines: building models in
    this process logs at INFO to mmengine's current logger."""
    from mmengine.logging import MMLogger
    MMLogger.get_instance('mmgdkd_demo', log_level='WARNING')


def prepare_data(root: str, quick: bool, skip: bool) -> None:
    if skip:
        if not osp.isdir(osp.join(root, 'leftImg8bit', 'val')):
            sys.exit(f'--skip-data: no Cityscapes tree under {root}')
        log(f'[data] using {root} as it is')
        return
    from mmgdkd.datasets.synthetic_cityscapes import generate_cityscapes
    num_train, num_val = DATA_SIZE['quick' if quick else 'full']
    log(f'[data] {num_train} train / {num_val} val scenes of '
        f'{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} under {root}')
    info = generate_cityscapes(
        root, num_train=num_train, num_val=num_val, size=IMAGE_SIZE,
        seed=DATA_SEED, progress=sys.stdout.isatty(),
        workers=os.cpu_count() or 1)
    log('[data] reused the existing data set' if info['reused'] else
        f'[data] rendered {info["num_written"]} scenes')


def save_student_init(path: str, seed: int) -> None:
    """Initial weights shared by every student run (via ``load_from``).

    The seed alone is not enough: a distiller builds (and randomly
    initialises) its teacher between building the student and initialising
    it, so the student's init would draw other random numbers.
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import set_random_seed
    from mmseg.registry import MODELS
    cfg = Config.fromfile(osp.join(CONFIG_DIR, STUDENT_CONFIG))
    init_default_scope('mmseg')
    set_random_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {'seed': seed}},
               path)


def train(name: str, config: str, work_dir: str, options: List[str],
          threads: int) -> dict:
    """Run ``tools/train.py`` on ``threads`` threads and show one progress
    line every ~1/6 of it (several runs may print at once: every line
    names its run).

    Returns the run's checkpoint and its final val metrics.
    """
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--cfg-options', *options]
    log(f'\n[{name}] python tools/train.py {osp.relpath(config, REPO_ROOT)} '
        f'--work-dir {work_dir}  ({threads} thread'
        f'{"s" if threads > 1 else ""})')
    start = time.time()
    tail = collections.deque(maxlen=40)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1, env=env)
    for line in proc.stdout:
        tail.append(line)
        match = TRAIN_LINE.search(line)
        if match:
            it, total = int(match.group(1)), int(match.group(2))
            if it % max(total // 6, 1) and it != total:
                continue
            losses = dict(re.findall(r'(\S*loss\S*): ([-\d.e]+)', line))
            shown = {k: v for k, v in
                     losses.items() if k == 'loss' or k.endswith('loss_ce')
                     or k.startswith('distill.decode')}
            log(f'[{name}] iter {it:4d}/{total}  ' +
                '  '.join(f'{k} {float(v):.3f}' for k, v in shown.items()) +
                f'  eta {match.group(3)}')
        match = VAL_LINE.search(line)
        if match:
            log(f'[{name}] val: {match.group(1).strip()}')
    if proc.wait() != 0:
        sys.stdout.write(''.join(tail))
        sys.exit(f'[{name}] training failed (full log under {work_dir})')
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    # The newest run's scalars (a re-run adds a timestamped sub-directory).
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                        'scalars.json')))[-1]
    with open(scalars) as f:
        records = [json.loads(line) for line in f]
    metrics = [r for r in records if 'mIoU' in r][-1]
    log(f'[{name}] done in {time.time() - start:.0f} s: {checkpoint}')
    return dict(name=name, config=config, checkpoint=checkpoint,
                mIoU=metrics['mIoU'], mAcc=metrics['mAcc'],
                aAcc=metrics['aAcc'], train_scalars=scalars)


def main(args: Optional[List[str]] = None) -> None:
    args = parse_args(args)
    start = time.time()
    data_root = osp.abspath(args.data_root)
    work_dir = osp.abspath(args.work_dir)
    out = osp.abspath(args.out or args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    os.makedirs(out, exist_ok=True)
    # Host deprecation warnings would drown the progress lines; the runs'
    # own output is filtered the same way and kept in full in their logs.
    warnings.filterwarnings('ignore')
    import mmgdkd  # noqa: F401  (compat shims before the hosts)
    quiet_mm_logs()
    prepare_data(data_root, args.quick, args.skip_data)

    init_ckpt = osp.join(work_dir, 'student_init.pth')
    save_student_init(init_ckpt, args.seed)
    log(f'[init] every student starts from {init_ckpt} (seed {args.seed})')

    common = [f'{split}_dataloader.dataset.data_root={data_root}'
              for split in ('train', 'val', 'test')]
    common.append(f'randomness.seed={args.seed}')
    if args.quick:
        n = QUICK_ITERS
        common += [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
                   f'param_scheduler.0.end={n}',
                   f'default_hooks.checkpoint.interval={n}',
                   'default_hooks.logger.interval=1']
    teacher = train('teacher', osp.join(CONFIG_DIR, TEACHER_CONFIG),
                    osp.join(work_dir, 'teacher'), common, TEACHER_THREADS)
    student_opts = common + [f'load_from={init_ckpt}']
    students = [(algo, ALGO_CONFIG.format(algo), student_opts +
                 [f'model.teacher_ckpt={teacher["checkpoint"]}'])
                for algo in args.algos]
    # The baseline last: it is the shortest, so it best fills the end.
    students.append(('student', STUDENT_CONFIG, student_opts))
    jobs = max(args.jobs, 1)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = [
            pool.submit(train, name, osp.join(CONFIG_DIR, config),
                        osp.join(work_dir, name), options, STUDENT_THREADS)
            for name, config, options in students
        ]
        # A failed run exits (SystemExit) here, after the others finish.
        done = {run['name']: run for run in (f.result() for f in futures)}
    runs = [teacher, done['student']] + [done[a] for a in args.algos]

    log('\n[eval] parameters, inference time, predictions')
    from mmgdkd.analysis.demo_report import (draw_figure, evaluate_extras,
                                             write_results)
    for run in runs:
        # Distilled checkpoints hold the student under plain keys, so they
        # load into the baseline student's config.
        run['eval_config'] = osp.join(
            CONFIG_DIR,
            TEACHER_CONFIG if run['name'] == 'teacher' else STUDENT_CONFIG)
    extras = evaluate_extras(runs, data_root)
    for run in runs:
        run.update(params_M=extras[run['name']]['params_M'],
                   ms_per_image=extras[run['name']]['ms_per_image'])
    draw_figure(osp.join(out, 'predictions.png'), extras, runs, LABELS)
    num_val = len(glob.glob(osp.join(data_root, 'leftImg8bit', 'val', '*',
                                     '*.png')))
    meta = dict(seed=args.seed, quick=args.quick, num_val=num_val,
                data_root=data_root, wall_time_s=round(time.time() - start),
                device=f'CPU, {os.cpu_count()} cores (teacher '
                f'{TEACHER_THREADS} threads, students {STUDENT_THREADS} '
                f'each, {jobs} at a time)')
    table = write_results(out, runs, meta, LABELS, IMAGE_SIZE)
    log('\n' + table)
    log(f'results: {osp.join(out, "results.md")}, results.json, '
        f'predictions.png ({meta["wall_time_s"]} s in all)')


if __name__ == '__main__':
    main()
