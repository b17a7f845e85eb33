# Copyright (c) mmgdkd contributors. All rights reserved.
"""Every classification config parses and builds its model on CPU.

No download: teacher_ckpt is dropped (the CIFAR teachers are local files,
the ImageNet teacher a URL) and no config initialises from a checkpoint.
"""
import glob
import os.path as osp

import pytest
import yaml
from mmengine.config import Config
from mmengine.registry import DefaultScope

from helpers import REPO_ROOT, untrained_teacher

ALGOS = ('gdkd', 'dkd', 'kd')
CIFAR_PAIRS = {
    # config prefix: (teacher backbone arch, student backbone arch)
    'resnet32x4_resnet8x4': ('resnet32x4', 'resnet8x4'),
    'resnet56_resnet20': ('resnet56', 'resnet20'),
    'wrn40-2_wrn16-2': ('wrn_40_2', 'wrn_16_2'),
    'vgg13_vgg8': ('vgg13', 'vgg8'),
}
CLS_CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*_cifar100.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', '*', '*_in1k.py')))
DISTILL_CONFIGS = [p for p in CLS_CONFIGS if 'cifar_teachers' not in p]
TEACHER_CONFIGS = [p for p in CLS_CONFIGS if 'cifar_teachers' in p]

# docs/losses.md, "Reference configurations" (the authors' configs):
# (w0, w1, w2, k, T, warm-up epochs).
GDKD_REFERENCE = {
    'resnet32x4_resnet8x4_cifar100': (1, 2, 8, 5, 4, 20),
    'resnet56_resnet20_cifar100': (1, 1, 1, 5, 4, 20),
    'wrn40-2_wrn16-2_cifar100': (1, 2, 6, 5, 4, 20),
    'vgg13_vgg8_cifar100': (1, 1, 6, 5, 4, 20),
    'resnet34_resnet18_in1k': (0.5, 1, 1, 5, 1, 1),
}
# mdistiller configs/{cifar100/dkd,imagenet/r34_r18}: (alpha, beta, T, warm-up)
DKD_REFERENCE = {
    'resnet32x4_resnet8x4_cifar100': (1, 8, 4, 20),
    'resnet56_resnet20_cifar100': (1, 2, 4, 20),
    'wrn40-2_wrn16-2_cifar100': (1, 6, 4, 20),
    'vgg13_vgg8_cifar100': (1, 6, 4, 20),
    'resnet34_resnet18_in1k': (1, 0.5, 1, 1),
}
# mdistiller KD: (T, CE weight, KD weight)
KD_REFERENCE = {'cifar100': (4, 0.1, 0.9), 'in1k': (1, 0.5, 0.5)}


def rel(path: str) -> str:
    return osp.relpath(path, REPO_ROOT)


def build(model_cfg):
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(model_cfg)


def runner_model_cfg(cfg: Config):
    """The model config as mmengine's Runner passes it (preprocessor in)."""
    model = cfg.model
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return model


def test_all_classification_configs_exist():
    names = {rel(p) for p in CLS_CONFIGS}
    for algo in ALGOS:
        assert f'configs/{algo}/resnet34_resnet18_in1k.py' in names
        for pair in CIFAR_PAIRS:
            assert f'configs/{algo}/{pair}_cifar100.py' in names
    for teacher in ('resnet32x4', 'resnet56', 'wrn40-2', 'vgg13'):
        assert f'configs/cifar_teachers/{teacher}_240e_cifar100.py' in names


@pytest.mark.parametrize('path', DISTILL_CONFIGS, ids=rel)
def test_distill_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpretrain'
    assert 'mmgdkd' in cfg.custom_imports.imports
    assert cfg.model.type == 'ClsDistiller'
    assert len(cfg.model.distill_losses) == 1
    untrained_teacher(cfg.model)
    with pytest.warns(UserWarning, match='allow_untrained_teacher=True'):
        model = build(runner_model_cfg(cfg))

    name = osp.splitext(osp.basename(path))[0]
    if name.endswith('_in1k'):
        assert model.teacher.backbone.depth == 34
        assert model.student.backbone.depth == 18
        assert model.num_classes(model.student) == 1000
        assert cfg.train_cfg.max_epochs == 100
    else:
        teacher_arch, student_arch = CIFAR_PAIRS[name[:-len('_cifar100')]]
        assert model.teacher.backbone.arch == teacher_arch
        assert model.student.backbone.arch == student_arch
        assert model.num_classes(model.student) == 100
        assert cfg.train_cfg.max_epochs == 240
    preprocessor = model.data_preprocessor
    assert type(preprocessor).__name__ == 'ClsDataPreprocessor'
    assert preprocessor.mean.flatten().tolist() == pytest.approx(
        cfg.data_preprocessor.mean)
    loss_name, = model.distill_losses
    loss = model.distill_losses[loss_name]
    assert type(loss).__name__ == cfg.model.distill_losses[loss_name].type
    assert loss.ignore_index is None  # no ignored labels (255 is a class)
    for init in (model.student.init_cfg, model.teacher.init_cfg):
        assert 'Pretrained' not in str(init)


@pytest.mark.parametrize('path', TEACHER_CONFIGS, ids=rel)
def test_teacher_training_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.type == 'ImageClassifier'
    model = build(runner_model_cfg(cfg))
    assert model.head.num_classes == 100
    arch = osp.basename(path).split('_')[0].replace('wrn40-2', 'wrn_40_2')
    assert model.backbone.arch == arch
    assert cfg.train_cfg.max_epochs == 240


def test_cifar_protocol():
    """CRD / mdistiller: batch 64, SGD 0.05/0.9/5e-4, x0.1 at 150/180/210."""
    for path in TEACHER_CONFIGS + [
            p for p in DISTILL_CONFIGS if p.endswith('_cifar100.py')
    ]:
        cfg = Config.fromfile(path)
        assert cfg.train_dataloader.batch_size == 64, path
        assert cfg.train_dataloader.dataset.type == 'CIFAR100'
        assert cfg.train_dataloader.dataset.data_root == 'data/cifar100'
        assert cfg.optim_wrapper.optimizer == dict(
            type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)
        assert cfg.param_scheduler.milestones == [150, 180, 210]
        assert cfg.param_scheduler.gamma == 0.1
        assert [t.type for t in cfg.train_pipeline] == [
            'RandomCrop', 'RandomFlip', 'PackInputs'
        ]
        assert cfg.train_pipeline[0].padding == 4
        if 'cifar_teachers' not in path:
            teacher = CIFAR_PAIRS[osp.basename(path).rsplit('_', 1)[0]][0]
            assert cfg.model.teacher_ckpt == \
                'checkpoints/cifar_teachers/' \
                f'{teacher.replace("wrn_40_2", "wrn40-2")}.pth'


def test_imagenet_teacher_is_the_model_zoo_resnet34():
    import mmpretrain
    metafile = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'configs', 'resnet',
        'metafile.yml')
    with open(metafile) as f:
        models = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    url = models['resnet34_8xb32_in1k']['Weights']
    for algo in ALGOS:
        cfg = Config.fromfile(
            osp.join(REPO_ROOT, 'configs', algo, 'resnet34_resnet18_in1k.py'))
        assert cfg.model.teacher_ckpt == url
        assert cfg.optim_wrapper.optimizer.lr == 0.1
        assert cfg.train_dataloader.batch_size == 32  # x 8 GPUs


@pytest.mark.parametrize('name', sorted(GDKD_REFERENCE))
def test_gdkd_reference_hyper_parameters(name):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'gdkd', name + '.py'))
    loss = cfg.model.distill_losses.loss_gdkd
    assert (loss.w0, loss.w1, loss.w2, loss.k, loss.temperature,
            cfg.model.warmup_epochs) == GDKD_REFERENCE[name]
    assert loss.kl_type == 'forward'
    assert cfg.model.get('head_weights') is None  # the head, weight 1
    assert _ce_weight(cfg) == 1.0


@pytest.mark.parametrize('name', sorted(DKD_REFERENCE))
def test_dkd_reference_hyper_parameters(name):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'dkd', name + '.py'))
    loss = cfg.model.distill_losses.loss_dkd
    assert (loss.alpha, loss.beta, loss.temperature,
            cfg.model.warmup_epochs) == DKD_REFERENCE[name]
    assert _ce_weight(cfg) == 1.0


@pytest.mark.parametrize('name', sorted(GDKD_REFERENCE))
def test_kd_reference_hyper_parameters(name):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', 'kd', name + '.py'))
    loss = cfg.model.distill_losses.loss_kd
    temperature, ce_weight, kd_weight = KD_REFERENCE[name.rsplit('_', 1)[1]]
    assert loss.temperature == temperature
    assert loss.loss_weight == kd_weight
    assert _ce_weight(cfg) == ce_weight
    assert not cfg.model.get('warmup_epochs')


def _ce_weight(cfg: Config) -> float:
    from mmgdkd.models.distillers.utils import load_model_cfg
    return load_model_cfg(cfg.model.student).head.loss.loss_weight
