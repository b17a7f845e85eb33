# Copyright (c) mmgdkd contributors. All rights reserved.
"""Speed and peak memory of the logit-distillation losses, forward+backward.

Methods, each on the same random logits (timing does not depend on values):

  gdkd     mmgdkd's ``GDKDLoss`` (closed-form gradient; on CPU the fused
           native kernel, with ``--backend torch`` its pure-torch twin,
           which is also what runs on CUDA)
  gdkd-ref the same formula written straightforwardly with autograd, as the
           published code does: rows ``(N*H*W, C)``, ``torch.topk`` index
           masks, a softmax pair for the group masses and two masked
           ``log_softmax`` pairs (``-1000`` masking)
  kd       mmgdkd's ``KDLoss`` (same backend as ``gdkd``)
  ce       ``F.cross_entropy`` on the student logits (a floor)

Cases: ``city`` Cityscapes decode-head logits at stride 8 of a 1024x2048
crop, N=8, C=19, 128x256; ``city-full`` N=2, C=19, 512x1024 (logits
upsampled to a 512x1024 crop); ``imagenet`` N=256, C=1000. Segmentation
uses k=3, w=(1, 1, 2), T=1 (the authors' seg defaults), ImageNet k=5,
w=(0.5, 1, 1), T=1 (R34->R18).

Time: a step is ``loss(student, teacher, target).backward()`` into a leaf
student; methods are run interleaved (to share the noise of a busy machine)
and the median of ``--repeat`` steps after ``--warmup`` is reported. On a
machine shared with other jobs prefer ``--threads 1``: with several OpenMP
threads every parallel op waits for its slowest, possibly descheduled,
thread, which swamps the small ops.

Peak memory: the largest number of tensor bytes alive at once during one
step, beyond what existed before it (inputs), the student's gradient
included. On CPU it is read from ``torch.profiler`` with ``profile_memory``:
c10's CPU allocator reports every allocation and free to it, and the running
sum of their sizes over the step peaks at the step's peak (exact tensor
bytes; allocator and page overhead excluded, so it does not depend on how
busy or fragmented the process is). With ``--device cuda``,
``torch.cuda.max_memory_allocated`` is used instead.

Examples::

    python tools/analysis/benchmark_losses.py --cases city imagenet \
        --repeat 10 --warmup 2
    # the pure-torch path (what runs on CUDA), on this CPU, and compiled
    python tools/analysis/benchmark_losses.py --backend torch
    python tools/analysis/benchmark_losses.py --backend torch --compile
    # the GPU path, when a GPU is at hand
    python tools/analysis/benchmark_losses.py --device cuda [--compile]
"""
import argparse
import os
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn.functional as F

import mmgdkd  # noqa: F401  (registers the losses)
from mmgdkd.models.losses import GDKDLoss, KDLoss, native_status
from mmgdkd.utils.known_warnings import silence_known_deprecations

CASES = {
    'city': dict(shape=(8, 19, 128, 256), k=3, w=(1.0, 1.0, 2.0), T=1.0),
    'city-full': dict(shape=(2, 19, 512, 1024), k=3, w=(1.0, 1.0, 2.0),
                      T=1.0),
    'imagenet': dict(shape=(256, 1000), k=5, w=(0.5, 1.0, 1.0), T=1.0),
}
METHODS = ('gdkd', 'gdkd-ref', 'kd', 'ce')


def straightforward_gdkd(zs: torch.Tensor, zt: torch.Tensor, k: int,
                         w: Tuple[float, float, float],
                         T: float) -> torch.Tensor:
    """The GDKD formula as the published code writes it (autograd)."""
    c = zs.shape[1]
    if zs.dim() == 4:
        zs = zs.permute(0, 2, 3, 1).reshape(-1, c)
        zt = zt.permute(0, 2, 3, 1).reshape(-1, c)
    top = torch.zeros_like(zt, dtype=torch.bool).scatter_(
        1, zt.topk(k, 1).indices, True)
    rest = ~top
    ps, pt = F.softmax(zs / T, 1), F.softmax(zt / T, 1)
    bs = torch.cat([(ps * top).sum(1, True), (ps * rest).sum(1, True)], 1)
    bt = torch.cat([(pt * top).sum(1, True), (pt * rest).sum(1, True)], 1)
    high = F.kl_div(bs.log(), bt, reduction='batchmean')
    lows = []
    for out in (rest, top):
        ls = F.log_softmax(zs / T - 1000.0 * out, 1)
        lt = F.log_softmax(zt / T - 1000.0 * out, 1)
        lows.append(
            F.kl_div(ls, lt, reduction='batchmean', log_target=True))
    return (w[0] * high + w[1] * lows[0] + w[2] * lows[1]) * T**2


def make_inputs(case: dict, device: str):
    """Student (leaf), teacher and labels, created without temporaries."""
    shape = case['shape']
    zs = torch.empty(shape, device=device).normal_().mul_(3.0)
    zt = torch.empty(shape, device=device).normal_().mul_(3.0)
    label_shape = (shape[0], ) + tuple(shape[2:])
    target = torch.empty(label_shape, dtype=torch.long,
                         device=device).random_(0, shape[1])
    return zs.requires_grad_(), zt, target


def make_step(method: str, case: dict, compile_: bool = False) -> Callable:
    """A function ``(zs, zt, target) -> loss`` for one method, optionally
    through ``torch.compile(fullgraph=True)`` (the pure-torch path)."""
    step = _make_step(method, case)
    return torch.compile(step, fullgraph=True) if compile_ else step


def _make_step(method: str, case: dict) -> Callable:
    k, w, T = case['k'], case['w'], case['T']
    if method == 'gdkd':
        return GDKDLoss(k=k, w0=w[0], w1=w[1], w2=w[2], temperature=T)
    if method == 'gdkd-ref':
        return lambda zs, zt, y: straightforward_gdkd(zs, zt, k, w, T)
    if method == 'kd':
        return KDLoss(temperature=T)
    if method == 'ce':
        return lambda zs, zt, y: F.cross_entropy(zs, y, ignore_index=255)
    raise ValueError(f'unknown method {method!r}')


def run_step(step: Callable, zs, zt, target) -> None:
    zs.grad = None
    step(zs, zt, target).backward()


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_case(case: dict, methods: List[str], repeat: int, warmup: int,
              device: str, compile_: bool = False) -> Dict[str, float]:
    """Median forward+backward milliseconds per method, interleaved."""
    zs, zt, target = make_inputs(case, device)
    steps = {m: make_step(m, case, compile_) for m in methods}
    times = {m: [] for m in methods}
    for i in range(warmup + repeat):
        for m in methods:
            _sync(device)
            start = time.perf_counter()
            run_step(steps[m], zs, zt, target)
            _sync(device)
            if i >= warmup:
                times[m].append((time.perf_counter() - start) * 1e3)
    return {m: statistics.median(t) for m, t in times.items()}


def peak_memory(case: dict, method: str, device: str,
                compile_: bool = False) -> float:
    """Peak extra MiB of tensors alive during one step (see module doc)."""
    zs, zt, target = make_inputs(case, device)
    step = make_step(method, case, compile_)
    run_step(step, zs, zt, target)  # warm caches, first-call allocations
    zs.grad = None
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run_step(step, zs, zt, target)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    with _quiet_fds(), profile(activities=[ProfilerActivity.CPU],
                               profile_memory=True) as p:
        run_step(step, zs, zt, target)
    events = []  # (time, +bytes allocated / -bytes freed)

    def collect(nodes):
        for node in nodes:
            if node.tag == _EventType.Allocation:
                events.append(
                    (node.start_time_ns, node.extra_fields.alloc_size))
            collect(node.children)

    # Frees of blocks allocated before the step are not reported.
    collect(p.profiler.kineto_results.experimental_event_tree())
    alive = peak = 0
    for _, size in sorted(events):
        alive += size
        peak = max(peak, alive)
    return peak / 2**20


class _quiet_fds:
    """Silence the C-level stdout/stderr (Kineto's per-session log lines)
    while the profiler starts and stops."""

    def __enter__(self):
        import sys
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cases', nargs='+', choices=list(CASES),
                        default=list(CASES))
    parser.add_argument('--methods', nargs='+', choices=METHODS,
                        default=list(METHODS))
    parser.add_argument('--repeat', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None,
                        help="torch.set_num_threads (default: torch's)")
    parser.add_argument('--device', default='cpu',
                        help="'cpu' or 'cuda' ('cuda:1', ...)")
    parser.add_argument(
        '--backend', choices=('auto', 'torch'), default='auto',
        help="'torch' disables the native CPU kernel (the CUDA code path)")
    parser.add_argument(
        '--compile', action='store_true',
        help='run each step through torch.compile(fullgraph=True) (the '
        'pure-torch path; the first, compiling steps are the warm-up)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory measurement')
    return parser.parse_args()


def main() -> None:
    silence_known_deprecations()
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.backend == 'torch':
        os.environ['MMGDKD_NATIVE'] = '0'
    backend = native_status() if args.device == 'cpu' and \
        not args.compile else 'pure torch'
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'device {args.device}, losses: {backend}'
          f'{", compiled" if args.compile else ""}, median of '
          f'{args.repeat} steps')
    header = f'{"case":10s} {"method":9s} {"fwd+bwd ms":>11s} {"peak MiB":>9s}'
    for name in args.cases:
        case = CASES[name]
        times = time_case(case, args.methods, args.repeat, args.warmup,
                          args.device, args.compile)
        mems = {
            m: (float('nan') if args.no_memory else peak_memory(
                case, m, args.device, args.compile))
            for m in args.methods
        }
        print(f'\n{name}: logits {case["shape"]}')
        print(header)
        for m in args.methods:
            print(f'{name:10s} {m:9s} {times[m]:11.1f} {mems[m]:9.1f}')
        ratios = []
        if 'gdkd' in times and 'kd' in times:
            ratios.append(f'GDKD/KD time {times["gdkd"] / times["kd"]:.2f}')
        if 'gdkd' in times and 'gdkd-ref' in times:
            ratios.append('GDKD/straightforward time '
                          f'{times["gdkd"] / times["gdkd-ref"]:.2f}, '
                          'peak memory '
                          f'{mems["gdkd"] / mems["gdkd-ref"]:.2f}')
        if ratios:
            print('  ' + '; '.join(ratios))


if __name__ == '__main__':
    main()
