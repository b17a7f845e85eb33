# Copyright (c) mmgdkd contributors. All rights reserved.
"""Every segmentation config parses and builds its model on CPU.

No download: teacher_ckpt is dropped and the student's ImageNet init off.
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from helpers import REPO_ROOT, untrained_teacher

SEG_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*cityscapes*.py')))


def test_seg_configs_found():
    names = {osp.relpath(p, REPO_ROOT) for p in SEG_CONFIGS}
    assert 'configs/gdkd/pspnet_r101_r18_cityscapes.py' in names
    for algo in ('gdkd', 'dkd', 'kd', 'cwd', 'dist'):
        for pair in ('pspnet_r101_r18', 'deeplabv3_r101_r18'):
            assert f'configs/{algo}/{pair}_cityscapes.py' in names


@pytest.mark.parametrize('path', SEG_CONFIGS,
                         ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_config_builds(path):
    from mmseg.registry import MODELS
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'SegDistiller'
    assert cfg.model.teacher_ckpt.startswith('https://download.openmmlab')
    assert cfg.train_cfg.max_iters == 80000
    assert cfg.crop_size == (512, 1024)
    assert len(cfg.model.distill_losses) == 1
    untrained_teacher(cfg.model)
    cfg.model.student.pretrained = None
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    assert model.teacher.backbone.depth == 101
    assert model.student.backbone.depth == 18
    name, = model.distill_losses
    loss_type = cfg.model.distill_losses[name].type
    assert type(model.distill_losses[name]).__name__ == loss_type


def test_gdkd_reference_hyper_parameters():
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/gdkd/pspnet_r101_r18_cityscapes.py'))
    loss = cfg.model.distill_losses.loss_gdkd
    assert (loss.k, loss.w0, loss.w1, loss.w2, loss.temperature) == \
        (3, 1.0, 1.0, 2.0, 1.0)
    assert cfg.model.head_weights == dict(decode=1.0, aux=0.4)


@pytest.mark.parametrize('pair', ['pspnet_r101_r18', 'deeplabv3_r101_r18'])
def test_dist_seg_gdkd_setting(pair):
    """DIST as the seg-gdkd reference runs it (train_kd.py, kd-method
    'dist', R18 students): beta=gamma=tau=1, every pixel, on the main head
    (weight 1) and on the auxiliary head (weight 0.4)."""
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, f'configs/dist/{pair}_cityscapes.py'))
    loss = cfg.model.distill_losses.loss_dist
    assert (loss.beta, loss.gamma, loss.temperature, loss.ignore_index,
            loss.loss_weight) == (1.0, 1.0, 1.0, None, 1.0)
    assert cfg.model.head_weights == dict(decode=1.0, aux=0.4)
