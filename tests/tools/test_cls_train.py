# Copyright (c) mmgdkd contributors. All rights reserved.
"""End to end: tools/train.py (+ --resume) and tools/test.py, CIFAR GDKD.

The config inherits the real ``configs/gdkd/resnet32x4_resnet8x4_cifar100.py``
and shrinks only the data and the schedule. MMPretrain's ``CIFAR100``
dataset verifies the md5 sums of the official pickles, so generated
pickles cannot stand in for them; the tiny data set is written in
MMPretrain's ``CustomDataset`` folder format instead (32x32 PNGs, one
sub-folder per class), with ``LoadImageFromFile`` prepended to the real
pipelines.
"""
import os.path as osp
import re
import subprocess

import pytest
import torch

from helpers import (REPO_ROOT, make_cifar_folder, save_cifar_teacher,
                     tiny_cls_overrides, write_config)

CONFIG = osp.join(REPO_ROOT, 'configs', 'gdkd',
                  'resnet32x4_resnet8x4_cifar100.py')


@pytest.fixture(scope='module')
def cifar_folder(tmp_path_factory) -> str:
    return make_cifar_folder(str(tmp_path_factory.mktemp('cifar_folder')))


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory) -> str:
    return save_cifar_teacher(
        str(tmp_path_factory.mktemp('teacher') / 'resnet32x4.pth'))


def run(tool, args, env, python_exe):
    proc = subprocess.run(
        [python_exe, osp.join(REPO_ROOT, 'tools', tool), *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    return log


@pytest.mark.slow
def test_train_resume_test(cifar_folder, teacher_ckpt, tmp_path, python_env,
                           python_exe):
    config = write_config(
        str(tmp_path / 'gdkd_tiny.py'), CONFIG,
        **tiny_cls_overrides(cifar_folder, teacher_ckpt))
    work_dir = str(tmp_path / 'work')

    log = run('train.py', [config, '--work-dir', work_dir], python_env,
              python_exe)
    assert f'Loaded teacher weights from {teacher_ckpt}' in log
    for key in ('student.loss', 'distill.head.loss_gdkd',
                'distill.warmup_factor'):
        assert key in log, key
    # loss components are logged under names without "loss"
    assert re.search(r'distill\.head\.gdkd_\w+: ', log)
    # warm-up over 20 epochs, epochs counted from 1: 1/20, then 2/20
    assert 'distill.warmup_factor: 0.0500' in log
    assert 'distill.warmup_factor: 0.1000' in log
    assert 'accuracy/top1' in log
    ckpt = osp.join(work_dir, 'epoch_2.pth')
    assert osp.isfile(ckpt)

    # the checkpoint is a plain ResNet8x4 ImageClassifier
    state = torch.load(ckpt, map_location='cpu', weights_only=False)
    keys = set(state['state_dict'])
    assert not any(k.startswith(('teacher.', 'student.')) for k in keys)
    assert 'head.fc.weight' in keys
    assert state['state_dict']['head.fc.weight'].shape == (100, 256)

    # resume from epoch 2 and train a third epoch
    log = run('train.py', [
        config, '--work-dir', work_dir, '--resume', '--cfg-options',
        'train_cfg.max_epochs=3'
    ], python_env, python_exe)
    assert 'resumed epoch: 2' in log
    assert 'distill.warmup_factor: 0.1500' in log
    assert 'distill.warmup_factor: 0.0500' not in log
    assert osp.isfile(osp.join(work_dir, 'epoch_3.pth'))

    # tools/test.py evaluates the student alone (no teacher built/loaded)
    log = run('test.py', [
        config, osp.join(work_dir, 'epoch_3.pth'), '--work-dir',
        str(tmp_path / 'test')
    ], python_env, python_exe)
    assert 'evaluating the student alone' in log
    assert 'Loaded teacher weights' not in log
    assert re.search(r'accuracy/top1: \d', log)
