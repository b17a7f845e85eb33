# Copyright (c) mmgdkd contributors. All rights reserved.
"""A classification teacher ensemble through tools/train.py: per-teacher
logs, a student-only checkpoint and a resume equal to an uninterrupted run.

The config inherits the real CIFAR GDKD config and swaps in two teachers
(ResNet32x4 and ResNet8x4) on the tiny folder data of test_cls_train.
"""
import os.path as osp
import re

import pytest
import torch
from mmengine.registry import DefaultScope

from helpers import REPO_ROOT, write_config
from test_cls_train import CONFIG, cifar_folder, run, tiny_overrides  # noqa

MODELS_DIR = osp.join(REPO_ROOT, 'configs', '_base_', 'models')
ARCHS = ('resnet32x4', 'resnet8x4')


@pytest.fixture(scope='module')
def teacher_ckpts(tmp_path_factory):
    from mmpretrain.registry import MODELS

    from mmgdkd.models.distillers.utils import load_model_cfg
    root = tmp_path_factory.mktemp('cls_ensemble_teachers')
    paths = []
    for seed, arch in enumerate(ARCHS):
        torch.manual_seed(seed)
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = MODELS.build(
                load_model_cfg(osp.join(MODELS_DIR, f'cifar_{arch}.py')))
        paths.append(str(root / f'{arch}.pth'))
        torch.save({'state_dict': model.state_dict()}, paths[-1])
    return paths


@pytest.mark.slow
def test_ensemble_train_and_resume(cifar_folder, teacher_ckpts,  # noqa
                                   tmp_path, python_env, python_exe):
    overrides = tiny_overrides(cifar_folder, None)
    # no random crop/flip: the transforms draw from numpy's global stream,
    # which a resumed run does not restore (RandomStateHook keeps torch's)
    overrides['train_dataloader']['dataset']['pipeline'] = [
        dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    overrides['model'] = dict(
        teacher=[dict(cfg_path=osp.join(MODELS_DIR, f'cifar_{arch}.py'))
                 for arch in ARCHS],
        teacher_ckpt=teacher_ckpts,
        teacher_weights=[2.0, 1.0],
        teacher_ensemble='loss')
    config = write_config(str(tmp_path / 'ensemble_tiny.py'), CONFIG,
                          **overrides)
    straight = str(tmp_path / 'straight')
    log = run('train.py', [config, '--work-dir', straight], python_env,
              python_exe)
    for i, ckpt in enumerate(teacher_ckpts, 1):
        assert f'Loaded teacher{i} weights from {ckpt}' in log
    for key in ('distill.head.teacher1.gdkd', 'distill.head.teacher2.gdkd'):
        assert re.search(rf'{re.escape(key)}: \d', log), key
    state = torch.load(osp.join(straight, 'epoch_2.pth'),
                       weights_only=True)['state_dict']
    assert not any(k.startswith(('teacher', 'student.')) for k in state)
    assert state['head.fc.weight'].shape == (100, 256)  # the ResNet8x4

    interrupted = str(tmp_path / 'interrupted')
    run('train.py', [config, '--work-dir', interrupted, '--cfg-options',
                     'train_cfg.max_epochs=1'], python_env, python_exe)
    log = run('train.py', [config, '--work-dir', interrupted, '--resume'],
              python_env, python_exe)
    assert 'resumed epoch: 1' in log
    resumed = torch.load(osp.join(interrupted, 'epoch_2.pth'),
                         weights_only=True)['state_dict']
    assert list(resumed) == list(state)
    for key, value in state.items():
        assert torch.equal(resumed[key], value), key
