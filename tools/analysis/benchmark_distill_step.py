# Copyright (c) mmgdkd contributors. All rights reserved.
"""Overhead of the distiller over its two networks, measured in one process.

Times, at a given crop and batch, with random weights and inputs (timing
does not depend on the values):

  (a) a student-only training step: ``student.loss`` + backward + SGD step
  (b) a teacher forward under ``no_grad`` (features + the tapped heads)
  (c) a full distillation step: ``distiller.loss`` + backward + SGD step

and prints the overhead ratio ``(c) / ((a) + (b))``; 1.0 means the distiller
adds nothing beyond running the two networks. Runs are interleaved; the
ratio of the medians of ``--repeat`` rounds is printed, and the median of
the per-round ratios, which a machine whose speed drifts during the run
(a shared host, thermal limits) affects less.

``--amp`` runs (a), (b) and (c) under autocast (fp16 on CUDA, bf16 on CPU),
as ``--amp`` training does; the teacher then follows the distiller's
``teacher_autocast`` (``'inherit'``: the same autocast). ``--device cuda``
measures the GPU path (the losses then take their pure-torch path).

Examples::

    python tools/analysis/benchmark_distill_step.py \
        configs/gdkd/pspnet_r101_r18_cityscapes.py --crop 512 1024 --batch 2
    python tools/analysis/benchmark_distill_step.py \
        configs/gdkd/pspnet_r101_r18_cityscapes.py --device cuda --amp
"""
import argparse
import contextlib
import statistics
import time
from typing import Callable, Dict, List

import torch

import mmgdkd  # noqa: F401
from mmgdkd.utils.known_warnings import silence_known_deprecations
from mmengine.config import Config, DictAction
from mmgdkd.models.losses import native_status
from mmengine.registry import init_default_scope


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a distillation config')
    parser.add_argument('--crop', type=int, nargs=2, default=(512, 1024),
                        metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch\'s)')
    parser.add_argument('--device', default='cpu',
                        help="'cpu' or 'cuda' ('cuda:1', ...)")
    parser.add_argument('--amp', action='store_true',
                        help='autocast: float16 on CUDA, bfloat16 on CPU')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def build(cfg: Config, crop) -> torch.nn.Module:
    # timing only: random weights run the same operations
    cfg.model.teacher_ckpt = None
    cfg.model.allow_untrained_teacher = True
    cfg.model.student = dict(cfg.model.student, pretrained=None)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import MODELS
    model = MODELS.build(cfg.model)
    model.data_preprocessor.size = tuple(crop)
    return model


def seg_batch(batch: int, crop, num_classes: int, device: str = 'cpu'):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    h, w = crop
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, h, w), device=device))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                                 pad_shape=(h, w)))
        samples.append(sample)
    return torch.randn(batch, 3, h, w, device=device), samples


def timed(fn: Callable[[], None], device: str) -> float:
    if device.startswith('cuda'):
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    silence_known_deprecations()
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = build(cfg, args.crop).to(args.device)
    model.train()
    student = model.student
    inputs, samples = seg_batch(args.batch, args.crop,
                                model.num_classes(student), args.device)
    device_type = torch.device(args.device).type
    amp_dtype = torch.float16 if device_type == 'cuda' else torch.bfloat16

    def autocast():
        if not args.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=amp_dtype)
    taps = sorted({t for h in model.loss_heads.values() for t in h})
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)

    def student_step():
        optimizer.zero_grad()
        with autocast():
            losses = student.loss(inputs, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()

    def teacher_forward():
        with torch.no_grad(), autocast(), model._teacher_autocast(inputs):
            model.teacher_forward(inputs, taps)

    def distill_step():
        optimizer.zero_grad()
        with autocast():
            losses = model.loss(inputs, samples)
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        optimizer.step()

    runs: Dict[str, Callable[[], None]] = {
        '(a) student step': student_step,
        '(b) teacher forward': teacher_forward,
        '(c) distill step': distill_step,
    }
    times: Dict[str, List[float]] = {name: [] for name in runs}
    for i in range(args.warmup + args.repeat):
        for name, fn in runs.items():
            elapsed = timed(fn, args.device)
            if i >= args.warmup:
                times[name].append(elapsed)
    median = {name: statistics.median(v) for name, v in times.items()}

    print(f'config: {args.config}')
    print(f'crop {args.crop[0]}x{args.crop[1]}, batch {args.batch}, '
          f'device {args.device}, '
          f'{"amp " + str(amp_dtype) if args.amp else "fp32"} (teacher '
          f'{model.teacher_autocast}), threads {torch.get_num_threads()}, '
          f'taps {taps}, median of {args.repeat}')
    backend = native_status() if device_type == 'cpu' else 'pure torch'
    print(f'losses: {backend}')
    print('per run (s): ' + '; '.join(
        f'{name.split()[0]} ' + ' '.join(f'{v:.2f}' for v in values)
        for name, values in times.items()))
    for name, value in median.items():
        print(f'  {name:<22} {value * 1000:10.1f} ms')
    a, b, c = median.values()
    rounds = [c_i / (a_i + b_i) for a_i, b_i, c_i in zip(*times.values())]
    print(f'overhead (c)/((a)+(b)) = {c / (a + b):.3f}; per round '
          + ' '.join(f'{r:.3f}' for r in rounds)
          + f', median {statistics.median(rounds):.3f}')


if __name__ == '__main__':
    main()
