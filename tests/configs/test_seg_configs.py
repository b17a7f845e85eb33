# Copyright (c) mmgdkd contributors. All rights reserved.
"""Every segmentation config parses and builds its model on CPU.

No download: teacher_ckpt is dropped and the student's ImageNet init off
(pretrained weights are fetched by ``init_weights``, which is not called).
"""
import functools
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from helpers import REPO_ROOT, assert_distill_log_window, untrained_teacher

SEG_DATASETS = ('cityscapes', 'ade20k', 'voc12aug')
ALGOS = ('gdkd', 'dkd', 'kd', 'cwd')
DIST_PAIRS = ('pspnet_r101_r18_cityscapes', 'deeplabv3_r101_r18_cityscapes')
#: Teacher ensembles (a list of teachers): tested on their own below.
ENSEMBLE_CONFIGS = ('gdkd/pspnet-deeplabv3_r101_pspnet_r18_cityscapes.py', )
SEG_CONFIGS = sorted(
    p for algo in ALGOS + ('dist', )
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', algo, '*.py'))
    if osp.basename(p)[:-3].rsplit('_', 1)[-1] in SEG_DATASETS and
    osp.relpath(p, osp.join(REPO_ROOT, 'configs')) not in ENSEMBLE_CONFIGS)
#: MMSeg's own config directory (``mmseg::`` paths).
MMSEG_CONFIGS = osp.join(osp.dirname(__import__('mmseg').__file__), '.mim',
                         'configs')
#: What a config takes from MMSeg's own config of the same dataset and
#: schedule unchanged: data, optimiser, schedule.
MMSEG_SETTINGS = ('crop_size', 'train_pipeline', 'test_pipeline',
                  'train_dataloader', 'val_dataloader', 'test_dataloader',
                  'val_evaluator', 'optim_wrapper', 'param_scheduler',
                  'train_cfg', 'val_cfg')
STUDENT_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'seg_students', '*.py')))

R101 = ('ResNetV1c', 101)
R18 = ('ResNetV1c', 18)
#: pair -> (teacher (backbone, depth, decode head), student (...), classes,
#:          dataset type, max_iters, crop, distilled taps)
PAIRS = {
    'pspnet_r101_r18_cityscapes':
    (R101 + ('PSPHead', ), R18 + ('PSPHead', ), 19, 'CityscapesDataset',
     80000, (512, 1024), {'decode', 'aux'}),
    'deeplabv3_r101_r18_cityscapes':
    (R101 + ('ASPPHead', ), R18 + ('ASPPHead', ), 19, 'CityscapesDataset',
     80000, (512, 1024), {'decode', 'aux'}),
    'deeplabv3_r101_mobilenetv2_cityscapes':
    (R101 + ('ASPPHead', ), ('MobileNetV2', None, 'ASPPHead'), 19,
     'CityscapesDataset', 80000, (512, 1024), {'decode'}),
    'segformer_mit-b4_mit-b0_cityscapes':
    (('MixVisionTransformer', None, 'SegformerHead'),
     ('MixVisionTransformer', None, 'SegformerHead'), 19, 'CityscapesDataset',
     160000, (1024, 1024), {'decode'}),
    'deeplabv3_r101_pspnet_r18_cityscapes':
    (R101 + ('ASPPHead', ), R18 + ('PSPHead', ), 19, 'CityscapesDataset',
     80000, (512, 1024), {'decode', 'aux'}),
    'pspnet_r101_r18_ade20k':
    (R101 + ('PSPHead', ), R18 + ('PSPHead', ), 150, 'ADE20KDataset', 80000,
     (512, 512), {'decode', 'aux'}),
    'deeplabv3_r101_r18_ade20k':
    (R101 + ('ASPPHead', ), R18 + ('ASPPHead', ), 150, 'ADE20KDataset',
     80000, (512, 512), {'decode', 'aux'}),
    'pspnet_r101_r18_voc12aug':
    (R101 + ('PSPHead', ), R18 + ('PSPHead', ), 21, 'PascalVOCDataset',
     40000, (512, 512), {'decode', 'aux'}),
    'deeplabv3_r101_r18_voc12aug':
    (R101 + ('ASPPHead', ), R18 + ('ASPPHead', ), 21, 'PascalVOCDataset',
     40000, (512, 512), {'decode', 'aux'}),
}


def _no_scope(value):
    """A config value without mmengine's ``_scope_`` markers (added to the
    parts inherited through ``mmseg::``)."""
    if isinstance(value, dict):
        return {k: _no_scope(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return [_no_scope(v) for v in value]
    return value


@functools.lru_cache(maxsize=None)
def _mmseg_settings(cfg_path: str) -> dict:
    assert cfg_path.startswith('mmseg::'), cfg_path
    cfg = Config.fromfile(osp.join(MMSEG_CONFIGS, cfg_path[len('mmseg::'):]))
    return {key: _no_scope(cfg.to_dict().get(key)) for key in MMSEG_SETTINGS}


def _build(model_cfg, real: bool):
    """The distiller, with real CPU weights or, when ``real`` is False, on
    the meta device (the same modules and checks, no weight allocation and
    initialisation: most of the time of an R101 build). MiT calls
    ``.item()`` while building, which meta tensors refuse: built on CPU."""
    from mmseg.registry import MODELS
    if not real:
        try:
            with torch.device('meta'):
                return MODELS.build(model_cfg)
        except RuntimeError as err:
            if 'meta tensors' not in str(err):
                raise
    return MODELS.build(model_cfg)


def test_every_pair_has_a_config_per_algorithm():
    names = {osp.relpath(p, REPO_ROOT) for p in SEG_CONFIGS}
    expected = {f'configs/{algo}/{pair}.py' for algo in ALGOS
                for pair in PAIRS}
    # DIST (the DIST_KD segmentation setting): the two original pairs
    expected |= {f'configs/dist/{pair}.py' for pair in DIST_PAIRS}
    assert names == expected


def _check_model(model, spec, classes):
    backbone, depth, head = spec
    assert type(model.backbone).__name__ == backbone
    if depth is not None:
        assert model.backbone.depth == depth
    assert type(model.decode_head).__name__ == head
    assert model.decode_head.num_classes == classes


@pytest.mark.parametrize('path', SEG_CONFIGS,
                         ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_config_builds(path):
    algo = osp.basename(osp.dirname(path))
    pair = osp.basename(path)[:-3]
    teacher, student, classes, dataset, iters, crop, taps = PAIRS[pair]
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'SegDistiller'
    assert_distill_log_window(cfg)
    assert cfg.model.teacher_ckpt.startswith(
        'https://download.openmmlab.com/mmsegmentation/')
    assert cfg.train_cfg.max_iters == iters
    assert cfg.crop_size == crop
    train_set = cfg.train_dataloader.dataset
    # VOC aug: MMSeg concatenates VOC 2012 train and the SBD aug set
    parts = train_set.datasets if train_set.type == 'ConcatDataset' else \
        [train_set]
    assert {part.type for part in parts} == {dataset}
    # data and schedule: MMSeg's own for this dataset (the teacher's
    # config, of the same dataset and schedule)
    ours = {key: _no_scope(cfg.to_dict().get(key)) for key in MMSEG_SETTINGS}
    assert ours == _mmseg_settings(cfg.model.teacher.cfg_path)
    assert len(cfg.model.distill_losses) == 1
    untrained_teacher(cfg.model)
    cfg.model.student.pretrained = None
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    # one real CPU build per pair (gdkd/); the other algorithms' configs
    # build the same teacher and student: meta device
    model = _build(cfg.model, real=algo == 'gdkd')
    _check_model(model.teacher, teacher, classes)
    _check_model(model.student, student, classes)
    name, = model.distill_losses
    loss_type = cfg.model.distill_losses[name].type
    assert type(model.distill_losses[name]).__name__ == loss_type
    decode_only = algo == 'cwd'
    assert set(model.loss_heads[name]) == ({'decode'} if decode_only else
                                           taps)


@pytest.mark.parametrize('path', STUDENT_CONFIGS,
                         ids=lambda p: osp.relpath(p, REPO_ROOT))
def test_student_baseline_configs_build(path):
    """The R18 students MMSeg has no config for: plain MMSeg configs."""
    from mmseg.registry import MODELS
    cfg = Config.fromfile(path)
    assert cfg.model.pretrained == 'open-mmlab://resnet18_v1c'
    cfg.model.pretrained = None
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    assert model.backbone.depth == 18
    assert model.decode_head.in_channels == 512
    assert model.auxiliary_head.in_channels == 256
    classes = 150 if 'ade20k' in path else 21
    assert model.decode_head.num_classes == classes


def test_gdkd_reference_hyper_parameters():
    reference = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/gdkd/pspnet_r101_r18_cityscapes.py'))
    ref_loss = reference.model.distill_losses.to_dict()
    assert ref_loss == dict(loss_gdkd=dict(
        type='GDKDLoss', k=3, w0=1.0, w1=1.0, w2=2.0, temperature=1.0,
        kl_type='forward', strategy='topk', ignore_index=255,
        loss_weight=1.0))
    assert reference.model.head_weights == dict(decode=1.0, aux=0.4)
    for pair in PAIRS:
        cfg = Config.fromfile(
            osp.join(REPO_ROOT, f'configs/gdkd/{pair}.py'))
        # every new pair: the Cityscapes reference setting, all of it
        assert cfg.model.distill_losses.to_dict() == ref_loss, pair
        assert cfg.model.get('warmup_iters') in (None, 0), pair
        assert cfg.model.get('warmup_epochs') in (None, 0), pair


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


def test_teacher_ensemble_config():
    """PSPNet-R101 + DeepLabV3-R101 (MMSeg zoo) -> PSPNet-R18, 'prob' mode."""
    from mmseg.registry import MODELS
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', ENSEMBLE_CONFIGS[0]))
    assert cfg.model.teacher_ckpt == [
        'https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/'
        'pspnet_r101-d8_512x1024_80k_cityscapes/'
        'pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth',
        'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
        'deeplabv3_r101-d8_512x1024_80k_cityscapes/'
        'deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899'
        '.pth'
    ]
    assert cfg.train_cfg.max_iters == 80000
    assert cfg.crop_size == (512, 1024)
    loss = cfg.model.distill_losses.loss_gdkd
    assert (loss.k, loss.w0, loss.w1, loss.w2, loss.temperature,
            loss.ignore_index) == (3, 1.0, 1.0, 2.0, 1.0, 255)
    untrained_teacher(cfg.model)
    cfg.model.student.pretrained = None
    init_default_scope('mmseg')
    model = MODELS.build(cfg.model)
    teacher, student, classes = PAIRS['pspnet_r101_r18_cityscapes'][:3]
    _check_model(model.teachers[0], teacher, classes)
    _check_model(model.teachers[1], R101 + ('ASPPHead', ), classes)
    _check_model(model.student, student, classes)
    assert model.teacher_weights == (0.5, 0.5)
    assert model.teacher_ensemble == 'prob'
    assert model.loss_heads['loss_gdkd'] == dict(decode=1.0, aux=0.4)
