# Copyright (c) mmgdkd contributors. All rights reserved.
"""Cost of a teacher ensemble: a two-teacher step against a one-teacher step.

From one ensemble config (``model.teacher`` a list), builds in one process:

  (1) the distiller with its first teacher only,
  (2) the ensemble in ``'prob'`` mode,
  (3) the ensemble in ``'loss'`` mode,

and measures a full training step of each (``distiller.loss`` + backward +
SGD step) with random weights and inputs: the median wall and CPU time
(``time.process_time``, which other processes on a shared machine do not
inflate) of ``--repeat`` runs, interleaved so that load spreads evenly, and
the peak memory of one step and of its forward part (``distiller.loss``,
where the teachers run beside the student's graph) above what was
allocated before it (CUDA:
``torch.cuda.max_memory_allocated``; CPU: the allocator's running total as
recorded by the PyTorch profiler; tensor memory, not the process RSS).

Example::

    python tools/analysis/benchmark_teacher_ensemble.py \
        configs/gdkd/pspnet-deeplabv3_r101_pspnet_r18_cityscapes.py \
        --crop 256 512 --batch 1 --repeat 5 --device cpu
"""
import argparse
import json
import os.path as osp
import statistics
import tempfile
import time
from typing import Callable, Dict, List

import torch

import mmgdkd  # noqa: F401
from mmengine.config import Config, DictAction
from mmengine.registry import DefaultScope


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a distillation config with a list '
                        'of teachers')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1')
    parser.add_argument('--crop', type=int, nargs=2, default=(512, 1024),
                        metavar=('H', 'W'), help='segmentation input size')
    parser.add_argument('--size', type=int, default=224,
                        help='classification input size')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch\'s)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the memory measurement')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def build_variants(cfg: Config) -> Dict[str, torch.nn.Module]:
    """The one-teacher distiller and the ensemble in both modes."""
    model_cfg = cfg.model
    teachers = model_cfg.teacher
    if not isinstance(teachers, (list, tuple)) or len(teachers) < 2:
        raise ValueError('the config\'s model.teacher must be a list of '
                         f'teachers, got {teachers!r}')
    scope = cfg.get('default_scope', 'mmseg')
    registry = _host_models(scope)
    # timing does not depend on the weights: no download
    base = dict(model_cfg, teacher_ckpt=None, allow_untrained_teacher=True)
    base['student'] = dict(base['student'], pretrained=None)
    variants = {
        '1 teacher': dict(base, teacher=teachers[0], teacher_weights=None),
        f'{len(teachers)} teachers, prob':
        dict(base, teacher_ensemble='prob'),
        f'{len(teachers)} teachers, loss':
        dict(base, teacher_ensemble='loss'),
    }
    models = {}
    with DefaultScope.overwrite_default_scope(scope):
        for name, variant in variants.items():
            torch.manual_seed(0)
            models[name] = registry.build(variant)
    return models


def _host_models(scope: str):
    if scope == 'mmpretrain':
        from mmpretrain.registry import MODELS
    else:
        from mmseg.registry import MODELS
    return MODELS


def make_batch(model, args, device: torch.device):
    """Random normalised inputs and labels for the model's host."""
    num_classes = model.num_classes(model.student)
    if type(model).__name__ == 'ClsDistiller':
        from mmpretrain.structures import DataSample
        inputs = torch.randn(args.batch, 3, args.size, args.size)
        samples = [
            DataSample().set_gt_label(int(i % num_classes)).to(device)
            for i in range(args.batch)
        ]
        return inputs.to(device), samples
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    h, w = args.crop
    samples = []
    for _ in range(args.batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, h, w), device=device))
        sample.set_metainfo(dict(img_shape=(h, w), ori_shape=(h, w),
                                 pad_shape=(h, w)))
        samples.append(sample)
    return torch.randn(args.batch, 3, h, w, device=device), samples


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def peak_memory(step: Callable[[], None], device: torch.device) -> float:
    """Peak tensor memory of one ``step`` in bytes, above what was live."""
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    # The CPU allocator reports its running total to the profiler for the
    # blocks allocated while profiling ("Total Allocated" of each memory
    # event): its peak above the first event's start is the step's peak.
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        step()
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'trace.json')
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = [e['args'] for e in json.load(f)['traceEvents']
                      if e.get('name') == '[memory]']
    if not events:
        return 0.
    start = events[0]['Total Allocated'] - events[0]['Bytes']
    return float(max(e['Total Allocated'] for e in events) - start)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    models = build_variants(cfg)
    inputs, samples = make_batch(next(iter(models.values())), args, device)
    steps: Dict[str, Callable[[], None]] = {}
    forwards: Dict[str, Callable[[], None]] = {}
    for name, model in models.items():
        model.to(device).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)

        def step(model=model, optimizer=optimizer):
            optimizer.zero_grad()
            losses = model.loss(inputs, samples)
            sum(v for k, v in losses.items() if 'loss' in k).backward()
            optimizer.step()

        def forward(model=model):
            # up to the losses: the student's graph is alive while the
            # teachers run, so this is where more teachers could add memory
            model.loss(inputs, samples)

        steps[name], forwards[name] = step, forward

    # wall time, and this process's CPU time: on a shared machine the
    # latter is not inflated by other processes (exact with --threads 1)
    wall: Dict[str, List[float]] = {name: [] for name in steps}
    cpu: Dict[str, List[float]] = {name: [] for name in steps}
    for i in range(args.warmup + args.repeat):
        for name, step in steps.items():
            synchronize(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            synchronize(device)
            if i >= args.warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    memory, forward_memory = {}, {}
    if not args.no_memory:
        for name in steps:
            memory[name] = peak_memory(steps[name], device)
            forward_memory[name] = peak_memory(forwards[name], device)

    shape = (f'crop {args.crop[0]}x{args.crop[1]}'
             if type(models['1 teacher']).__name__ == 'SegDistiller' else
             f'size {args.size}')
    print(f'config: {args.config}')
    print(f'device {device}, {shape}, batch {args.batch}, threads '
          f'{torch.get_num_threads()}, median of {args.repeat} interleaved '
          'runs [min-max]; ratios against the one-teacher step')
    reference = '1 teacher'
    for name in steps:
        line = f'  {name:<18}'
        for label, values in (('wall', wall), ('cpu', cpu)):
            med = {k: statistics.median(v) for k, v in values.items()}
            ratio = med[name] / med[reference]
            line += (f' {label} {med[name]:7.2f} s [{min(values[name]):.2f}-'
                     f'{max(values[name]):.2f}] x{ratio:.2f} |')
        if memory:
            for label, peaks in (('peak step', memory),
                                 ('peak fwd', forward_memory)):
                line += (f' {label} {peaks[name] / 2**20:7.1f} MiB '
                         f'x{peaks[name] / peaks[reference]:.2f} |')
        print(line.rstrip(' |'))


if __name__ == '__main__':
    main()
