# Copyright (c) mmgdkd contributors. All rights reserved.
"""A teacher ensemble end to end: tools/train.py (+ --resume) and a
2-process dist_train.sh run, with a config derived by ``_base_`` from the
real PSPNet-R101 + DeepLabV3-R101 -> PSPNet-R18 one (tiny R18 models)."""
import os.path as osp

import pytest
import torch
from mmengine.registry import DefaultScope

from helpers import (PSPNET_R18, build_segmentor, run_dist_train,
                      tiny_seg_overrides, tiny_segmentor, write_config)
from test_seg_distill_tools import run_tool, scalars

pytestmark = pytest.mark.slow
CONFIG = 'configs/gdkd/pspnet-deeplabv3_r101_pspnet_r18_cityscapes.py'
DEEPLABV3_R18 = \
    'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'


@pytest.fixture(scope='module')
def workspace(tmp_path_factory, cityscapes_root, repo_root):
    """Two teacher checkpoints (PSPNet-R18, DeepLabV3-R18) and the config."""
    from mmseg.registry import MODELS

    from mmgdkd.models.distillers.utils import load_model_cfg
    root = tmp_path_factory.mktemp('ensemble_tools')
    torch.manual_seed(3)
    psp_ckpt = str(root / 'pspnet_r18.pth')
    torch.save({'state_dict': build_segmentor().state_dict()}, psp_ckpt)
    deeplab = dict(cfg_path=DEEPLABV3_R18, **tiny_segmentor())
    torch.manual_seed(4)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(load_model_cfg(deeplab))
    deeplab_ckpt = str(root / 'deeplabv3_r18.pth')
    torch.save({'state_dict': model.state_dict()}, deeplab_ckpt)
    config = write_config(
        str(root / 'ensemble_tiny.py'), osp.join(repo_root, CONFIG),
        model=dict(
            student=tiny_segmentor(),
            teacher=[dict(cfg_path=PSPNET_R18, **tiny_segmentor()), deeplab],
            teacher_ckpt=[psp_ckpt, deeplab_ckpt]),
        **tiny_seg_overrides(cityscapes_root, max_iters=4, val_interval=2,
                             schedule_iters=4))
    return dict(root=root, config=config, ckpts=[psp_ckpt, deeplab_ckpt])


@pytest.fixture(scope='module')
def uninterrupted(workspace, repo_root, python_env, python_exe):
    work_dir = str(workspace['root'] / 'uninterrupted')
    log = run_tool(repo_root, python_env, python_exe, 'train.py',
                   workspace['config'], '--work-dir', work_dir)
    return dict(work_dir=work_dir, log=log)


def test_train_loads_each_teacher_and_saves_the_student(
        workspace, uninterrupted):
    for i, ckpt in enumerate(workspace['ckpts'], 1):
        assert f'Loaded teacher{i} weights from {ckpt}' in \
            uninterrupted['log']
    records = scalars(uninterrupted['work_dir'])
    train_keys = set().union(*[r for r in records if 'loss' in r])
    assert {'distill.decode.loss_gdkd', 'distill.aux.loss_gdkd',
            'distill.decode.gdkd_high'} <= train_keys
    assert not any('.teacher' in k for k in train_keys)  # 'prob' mode
    assert any('mIoU' in r for r in records)
    # the checkpoint holds the student alone, as a plain PSPNet-R18
    state = torch.load(osp.join(uninterrupted['work_dir'], 'iter_4.pth'),
                       weights_only=True)['state_dict']
    plain = build_segmentor()
    assert list(state) == list(plain.state_dict())
    plain.load_state_dict(state, strict=True)


def test_resume_equals_uninterrupted(workspace, uninterrupted, repo_root,
                                     python_env, python_exe):
    work_dir = str(workspace['root'] / 'interrupted')
    run_tool(repo_root, python_env, python_exe, 'train.py',
             workspace['config'], '--work-dir', work_dir, '--cfg-options',
             'train_cfg.max_iters=2')
    log = run_tool(repo_root, python_env, python_exe, 'train.py',
                   workspace['config'], '--work-dir', work_dir, '--resume')
    assert 'resumed epoch' in log
    resumed = torch.load(osp.join(work_dir, 'iter_4.pth'),
                         weights_only=True)['state_dict']
    straight = torch.load(
        osp.join(uninterrupted['work_dir'], 'iter_4.pth'),
        weights_only=True)['state_dict']
    assert list(resumed) == list(straight)
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key


def test_loss_mode_ddp_two_processes(workspace, repo_root, python_env,
                                     python_exe):
    if torch.cuda.is_available():
        pytest.skip('CPU/gloo path')
    work_dir = str(workspace['root'] / 'ddp')
    proc = run_dist_train(
        repo_root, workspace['config'], work_dir, python_env, python_exe,
        extra=['--cfg-options', 'train_cfg.max_iters=2',
               'model.teacher_ensemble=loss'])
    log = proc.stdout + proc.stderr
    assert 'GPU number: 2' in log
    records = [r for r in scalars(work_dir) if 'loss' in r]
    for key in ('distill.decode.loss_gdkd', 'distill.decode.teacher1.gdkd',
                'distill.decode.teacher2.gdkd', 'distill.aux.teacher2.gdkd'):
        assert key in records[0], key
    # rank 0's logged term is the weighted (1/2, 1/2) sum of its teachers'
    first = records[0]
    assert first['distill.decode.loss_gdkd'] == pytest.approx(
        0.5 * (first['distill.decode.teacher1.gdkd'] +
               first['distill.decode.teacher2.gdkd']), rel=1e-3)
    state = torch.load(osp.join(work_dir, 'iter_2.pth'),
                       weights_only=True)['state_dict']
    assert list(state) == list(build_segmentor().state_dict())
