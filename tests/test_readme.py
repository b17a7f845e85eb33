# Copyright (c) mmgdkd contributors. All rights reserved.
"""The README's commands run as written.

Every command of the README's ``shell`` blocks is either run here, verbatim
up to the few "tiny settings" substitutions of :data:`TINY`, or listed in
:data:`NOT_RUN` with the reason. A command added to the README without
either fails :func:`test_every_readme_command_is_covered`.

They run in a sandbox laid out like the repository after ``make demo``
(``tools/`` is the repository's), in an environment like the activated
``.venv`` (its ``bin`` first on ``PATH``). Each config a command names is,
in the sandbox, a tiny config of the same path that inherits the real one
(``mmgdkd::<same path>``) and shrinks data, models and schedule; the data,
teachers and demo runs are generated.
"""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from typing import List

import pytest

from helpers import (PSPNET_R18, REPO_ROOT, build_segmentor, free_port,
                     make_cifar_folder, save_cifar_teacher,
                     tiny_cls_overrides, tiny_seg_overrides, tiny_segmentor,
                     write_config)

README = osp.join(REPO_ROOT, 'README.md')
SEG = 'configs/gdkd/pspnet_r101_r18_cityscapes.py'
CLS = 'configs/gdkd/resnet32x4_resnet8x4_cifar100.py'
DEMO = 'configs/demo/gdkd_pspnet_r18w32-r18w16_synthetic.py'

#: Commands not run here (matched by prefix), and why.
NOT_RUN = {
    'make demo': 'the demo (tests/tools/test_demo.py runs it, --quick)',
    'make test': 'the test suite, which runs this test',
    'pip install': 'installation (CI installs with it)',
    'source .venv/bin/activate': 'emulated: the environment of the runs',
    'GPUS=8 bash tools/slurm_train.sh': 'needs a Slurm cluster (srun); '
    'syntax-checked here',
    'python -m pytest': 'the test suite',
    'python tools/analysis/benchmark_losses.py --device cuda':
    'needs a CUDA GPU (the CPU form of the same tool runs here)',
    'python tools/analysis/benchmark_distill_step.py '
    'configs/gdkd/pspnet_r101_r18_cityscapes.py --device cuda':
    'needs a CUDA GPU (the CPU form of the same tool runs here)',
    'python tools/analysis/benchmark_teacher_ensemble.py':
    'builds two R101 teachers; tests/tools/test_ensemble_train.py runs the '
    'tool on tiny models',
}
#: Real-scale numbers in the commands and what the tiny runs use instead.
TINY = [
    (f'{SEG} 4', f'{SEG} 2'),  # processes: 2 cores
    ('iter_80000.pth', 'iter_2.pth'),
    ('epoch_240.pth', 'epoch_1.pth'),
    ('--nproc 8', '--nproc 1'),
    ('benchmark_losses.py --threads 1',
     'benchmark_losses.py --threads 1 --cases imagenet --repeat 1 '
     '--warmup 0 --no-memory'),
    ('--crop 512 1024', '--crop 64 128 --repeat 1 --warmup 0'),
]
#: What each run command must print (``out``) or leave behind (``file``, a
#: sandbox path); the longest matching prefix applies.
EXPECT = {
    'python tools/train.py configs/gdkd/pspnet': ('out', 'Iter(val)'),
    f'python tools/train.py {SEG} --resume':
    ('out', 'resumed epoch: 0, iter: 2'),
    'bash tools/dist_train.sh': ('out', 'Distributed training: True'),
    'python tools/test.py configs/gdkd/pspnet': ('out', 'mIoU'),
    'python tools/train.py configs/gdkd/resnet': ('out', 'accuracy/top1'),
    'python tools/test.py configs/gdkd/resnet': ('out', 'accuracy/top1'),
    'python tools/dataset_converters': ('file', 'data/cityscapes/train.txt'),
    'python tools/analysis/teacher_distribution.py':
    ('file', 'work_dirs/teacher_distribution/'
     'gdkd_pspnet_r18w32-r18w16_synthetic/stats.json'),
    'python tools/analysis/plot_distill_log.py':
    ('file', 'work_dirs/demo/gdkd/distill_log.png'),
    'python tools/analysis/benchmark_losses.py': ('out', 'imagenet'),
    'python tools/analysis/benchmark_distill_step.py':
    ('out', '(c)/((a)+(b))'),
}


def readme_commands() -> List[str]:
    """The commands of the README's ``shell`` blocks, in order."""
    with open(README, encoding='utf-8') as f:
        text = f.read()
    commands = []
    for block in re.findall(r'```shell\n(.*?)```', text, re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            line = re.sub(r'\s+#.*$', '', line).strip()
            if line and not line.startswith('#'):
                commands.append(re.sub(r'\s+', ' ', line))
    return commands


def tiny(command: str) -> str:
    for real, small in TINY:
        command = command.replace(real, small)
    return command


def _skip_reason(command: str):
    return next((why for prefix, why in NOT_RUN.items()
                 if command.startswith(prefix)), None)


def test_every_readme_command_is_covered():
    commands = readme_commands()
    assert len(commands) >= 15
    for command in commands:
        if _skip_reason(command) is None:
            assert any(command.startswith(p) for p in EXPECT), (
                f'README command not run by tests/test_readme.py: '
                f'{command!r}; add it to EXPECT (or NOT_RUN with a reason)')
    # the one Slurm line is at least valid bash
    slurm = osp.join(REPO_ROOT, 'tools', 'slurm_train.sh')
    assert subprocess.run(['bash', '-n', slurm]).returncode == 0


def _venv_env(sandbox: str) -> dict:
    """``source .venv/bin/activate``: its bin first on PATH. The checkout
    goes on PYTHONPATH only if the environment's installed mmgdkd is
    another one (a developer's worktree); in CI it is this checkout."""
    bin_dir = osp.dirname(sys.executable)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(PATH=bin_dir + os.pathsep + env.get('PATH', ''),
               VIRTUAL_ENV=osp.dirname(bin_dir), OMP_NUM_THREADS='1',
               PORT=str(free_port()))
    probe = subprocess.run(
        [sys.executable, '-c', 'import mmgdkd; print(mmgdkd.__file__)'],
        cwd=sandbox, env=env, capture_output=True, text=True)
    installed = probe.stdout.strip()
    if not installed.startswith(osp.join(REPO_ROOT, 'mmgdkd')):
        env['PYTHONPATH'] = REPO_ROOT
    return env


def _polygons(path: str, height: int, width: int) -> None:
    """A Cityscapes polygon file: sky above, road below, a car."""
    def rect(x0, y0, x1, y1):
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    objects = [('sky', rect(0, 0, width - 1, height // 3)),
               ('road', rect(0, height // 3, width - 1, height - 1)),
               ('car', rect(width // 4, height // 2, width // 2,
                            3 * height // 4))]
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(dict(imgHeight=height, imgWidth=width,
                       objects=[dict(label=label, polygon=polygon)
                                for label, polygon in objects]), f)


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory) -> str:
    import torch

    from mmgdkd.datasets.synthetic_cityscapes import generate_cityscapes
    from mmgdkd.models.distillers.utils import load_model_cfg
    root = tmp_path_factory.mktemp('readme')
    os.symlink(osp.join(REPO_ROOT, 'tools'), root / 'tools')
    for sub in ('configs/gdkd', 'configs/demo', 'checkpoints',
                'work_dirs/demo/teacher'):
        (root / sub).mkdir(parents=True)

    # Cityscapes: images, polygons for the converter, and labels already
    # (the README trains before it converts; the converter rewrites them)
    cityscapes = str(root / 'data' / 'cityscapes')
    generate_cityscapes(cityscapes, num_train=4, num_val=2, size=(64, 128),
                        seed=0)
    for dirpath, _, files in os.walk(osp.join(cityscapes, 'gtFine')):
        for name in files:
            stem = name.split('_gtFine_')[0]
            _polygons(osp.join(dirpath, f'{stem}_gtFine_polygons.json'), 64,
                      128)
    torch.manual_seed(3)
    teacher = str(root / 'checkpoints' / 'pspnet_teacher.pth')
    torch.save({'state_dict': build_segmentor().state_dict()}, teacher)
    write_config(
        str(root / SEG), f'mmgdkd::{SEG[len("configs/"):]}',
        model=dict(student=tiny_segmentor(),
                   teacher=dict(cfg_path=PSPNET_R18, **tiny_segmentor()),
                   teacher_ckpt=teacher),
        **tiny_seg_overrides('data/cityscapes/', max_iters=2))

    cifar = make_cifar_folder(str(root / 'data' / 'cifar_folder'))
    write_config(
        str(root / CLS), f'mmgdkd::{CLS[len("configs/"):]}',
        **tiny_cls_overrides(
            cifar, save_cifar_teacher(str(root / 'checkpoints' /
                                          'resnet32x4.pth')), max_epochs=1))

    # after `make demo`: its data, its teacher (runs: see _demo_runs)
    generate_cityscapes(str(root / 'data' / 'synthetic_cityscapes'),
                        num_train=2, num_val=2, size=(128, 256), seed=0)
    demo_teacher = load_model_cfg(
        'mmgdkd::demo/teacher_pspnet_r18w32_synthetic.py')
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(demo_teacher)
    torch.save({'state_dict': model.state_dict()},
               str(root / 'work_dirs/demo/teacher/iter_400.pth'))
    write_config(
        str(root / DEMO), f'mmgdkd::{DEMO[len("configs/"):]}',
        model=dict(teacher_ckpt='work_dirs/demo/teacher/iter_400.pth'),
        val_dataloader=dict(dataset=dict(
            data_root='data/synthetic_cityscapes/')))
    return str(root)


def _demo_runs(sandbox: str) -> None:
    """``make demo``'s run logs: the tiny GDKD run's scalars stand in."""
    found = []
    for dirpath, _, files in os.walk(osp.join(sandbox, 'work_dirs', 'gdkd')):
        if 'scalars.json' in files:
            found.append(osp.join(dirpath, 'scalars.json'))
    assert found, 'the README trains before it plots'
    for run in ('gdkd', 'kd', 'student'):
        target = osp.join(sandbox, 'work_dirs', 'demo', run, '20250101_000000',
                          'vis_data')
        os.makedirs(target, exist_ok=True)
        shutil.copy(found[0], target)


@pytest.mark.slow
def test_readme_commands_run_as_written(sandbox):
    env = _venv_env(sandbox)
    ran = []
    for command in readme_commands():
        if _skip_reason(command) is not None:
            continue
        if command.startswith('python tools/analysis/plot_distill_log'):
            _demo_runs(sandbox)
        start = time.time()
        proc = subprocess.run(tiny(command), shell=True, cwd=sandbox,
                              env=env, executable='/bin/bash',
                              capture_output=True, text=True, timeout=900)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, (command, output[-5000:])
        kind, expected = EXPECT[max(
            (p for p in EXPECT if command.startswith(p)), key=len)]
        if kind == 'file':
            assert osp.exists(osp.join(sandbox, expected)), (command,
                                                             expected)
        else:
            assert expected in output, (command, output[-3000:])
        print(f'{time.time() - start:6.1f} s  {command}')
        ran.append(command)
    # the work dir the README's test command reads is where train wrote
    assert osp.isfile(osp.join(
        sandbox, 'work_dirs/gdkd/pspnet_r101_r18_cityscapes/iter_2.pth'))
    assert len(ran) >= 11
