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
import contextlib
import glob
import io
import json
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional

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
FIGURE_IMAGES = 3
TIMING_ROUNDS = 20
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
        seed=DATA_SEED, progress=sys.stdout.isatty())
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


def train(name: str, config: str, work_dir: str, options: List[str]) -> dict:
    """Run ``tools/train.py`` and show one progress line every ~1/6 of it.

    Returns the run's checkpoint and its final val metrics.
    """
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
           '--work-dir', work_dir, '--cfg-options', *options]
    log(f'\n[{name}] python tools/train.py {osp.relpath(config, REPO_ROOT)} '
        f'--work-dir {work_dir}')
    start = time.time()
    tail = collections.deque(maxlen=40)
    proc = subprocess.Popen(
        cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1)
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


def evaluate_extras(runs: List[dict], data_root: str) -> Dict[str, dict]:
    """Load every checkpoint as a plain MMSeg model (``init_model``): count
    parameters, time ``inference_model`` and predict the figure's images."""
    import cv2
    import torch
    from mmseg.apis import inference_model, init_model

    val_imgs = sorted(glob.glob(osp.join(data_root, 'leftImg8bit', 'val',
                                         '*', '*_leftImg8bit.png')))
    # Evenly spaced, not picked: the figure shows typical cases.
    step = max(len(val_imgs) // FIGURE_IMAGES, 1)
    figure_imgs = [cv2.imread(p) for p in val_imgs[::step][:FIGURE_IMAGES]]
    models = {}
    for run in runs:
        # Distilled checkpoints hold the student under plain keys, so they
        # load into the baseline student's config.
        config = osp.join(CONFIG_DIR, TEACHER_CONFIG if run['name'] ==
                          'teacher' else STUDENT_CONFIG)
        with contextlib.redirect_stdout(io.StringIO()):  # loading chatter
            models[run['name']] = init_model(config, run['checkpoint'],
                                             'cpu')
    extras = {name: dict(times=[]) for name in models}
    with torch.no_grad():
        for name, model in models.items():
            # Parameters used at inference (the auxiliary head only trains).
            extras[name]['params_M'] = sum(
                p.numel() for n, p in model.named_parameters()
                if not n.startswith('auxiliary_head')) / 1e6
            extras[name]['preds'] = [
                inference_model(model, img).pred_sem_seg.data[0].numpy()
                for img in figure_imgs]
        # Round-robin, so that a load change on the machine hits all alike.
        for _ in range(TIMING_ROUNDS):
            for name, model in models.items():
                tic = time.perf_counter()
                inference_model(model, figure_imgs[0])
                extras[name]['times'].append(time.perf_counter() - tic)
    for name in extras:
        extras[name]['ms_per_image'] = 1e3 * statistics.median(
            extras[name].pop('times'))
    extras['_images'] = figure_imgs
    extras['_labels'] = [
        cv2.imread(
            p.replace(osp.join('leftImg8bit', 'val'),
                      osp.join('gtFine', 'val')).replace(
                          '_leftImg8bit.png', '_gtFine_labelTrainIds.png'),
            cv2.IMREAD_GRAYSCALE) for p in val_imgs[::step][:FIGURE_IMAGES]
    ]
    return extras


def draw_figure(path: str, extras: dict, runs: List[dict]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    from mmseg.datasets import CityscapesDataset

    palette = np.zeros((256, 3), np.uint8)  # ignore (255) stays black
    palette[:19] = CityscapesDataset.METAINFO['palette']
    shown = [r for r in runs if r['name'] in ('teacher', 'student', 'gdkd')]
    titles = ['image', 'ground truth'] + [
        f'{LABELS[r["name"]]}\nmIoU {r["mIoU"]:.1f}' for r in shown]
    rows = len(extras['_images'])
    fig, axes = plt.subplots(
        rows, len(titles), figsize=(2.6 * len(titles), 1.5 * rows + 0.5),
        squeeze=False)
    for i in range(rows):
        cells = [extras['_images'][i][..., ::-1], palette[extras['_labels'][i]]
                 ] + [palette[extras[r['name']]['preds'][i]] for r in shown]
        for j, cell in enumerate(cells):
            axes[i, j].imshow(cell, interpolation='nearest')
            axes[i, j].axis('off')
            if i == 0:
                axes[i, j].set_title(titles[j], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_results(out: str, runs: List[dict], meta: dict) -> str:
    base = next(r for r in runs if r['name'] == 'student')
    lines = [
        f'Synthetic Cityscapes val ({meta["num_val"]} images, '
        f'{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}), seed {meta["seed"]}, '
        f'{meta["device"]}, {meta["wall_time_s"]} s in all.' +
        (' --quick: a pipeline check, the numbers mean nothing.'
         if meta['quick'] else ''), '',
        '| model | mIoU | mAcc | Δ mIoU vs student | params (M) | '
        'ms / image |', '|---|---|---|---|---|---|'
    ]
    for run in runs:
        delta = ('' if run['name'] in ('teacher', 'student') else
                 f'{run["mIoU"] - base["mIoU"]:+.2f}')
        lines.append(f'| {LABELS[run["name"]]} | {run["mIoU"]:.2f} | '
                     f'{run["mAcc"]:.2f} | {delta} | {run["params_M"]:.2f} | '
                     f'{run["ms_per_image"]:.1f} |')
    table = '\n'.join(lines) + '\n'
    with open(osp.join(out, 'results.md'), 'w', encoding='utf-8') as f:
        f.write('# mmgdkd demo results\n\n' + table)
    keys = ('name', 'config', 'checkpoint', 'mIoU', 'mAcc', 'aAcc',
            'params_M', 'ms_per_image', 'train_scalars')
    with open(osp.join(out, 'results.json'), 'w', encoding='utf-8') as f:
        json.dump(dict(meta, runs=[{k: r[k] for k in keys} for r in runs]),
                  f, indent=2)
    return table


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
    runs = [train('teacher', osp.join(CONFIG_DIR, TEACHER_CONFIG),
                  osp.join(work_dir, 'teacher'), common)]
    student_opts = common + [f'load_from={init_ckpt}']
    runs.append(train('student', osp.join(CONFIG_DIR, STUDENT_CONFIG),
                      osp.join(work_dir, 'student'), student_opts))
    for algo in args.algos:
        runs.append(train(
            algo, osp.join(CONFIG_DIR, ALGO_CONFIG.format(algo)),
            osp.join(work_dir, algo),
            student_opts + [f'model.teacher_ckpt={runs[0]["checkpoint"]}']))

    log('\n[eval] parameters, inference time, predictions')
    extras = evaluate_extras(runs, data_root)
    for run in runs:
        run.update(params_M=extras[run['name']]['params_M'],
                   ms_per_image=extras[run['name']]['ms_per_image'])
    draw_figure(osp.join(out, 'predictions.png'), extras, runs)
    import torch
    num_val = len(glob.glob(osp.join(data_root, 'leftImg8bit', 'val', '*',
                                     '*.png')))
    meta = dict(seed=args.seed, quick=args.quick, num_val=num_val,
                data_root=data_root, wall_time_s=round(time.time() - start),
                device=f'CPU, {torch.get_num_threads()} threads')
    table = write_results(out, runs, meta)
    log('\n' + table)
    log(f'results: {osp.join(out, "results.md")}, results.json, '
        f'predictions.png ({meta["wall_time_s"]} s in all)')


if __name__ == '__main__':
    main()
