# Copyright (c) mmgdkd contributors. All rights reserved.
"""Every classification config parses, its losses build, and every distinct
teacher/student pair builds its model on CPU; hyper-parameters against the
authors' configs.

No download: teacher_ckpt is dropped and nothing initialises from a
checkpoint at build time (``init_cfg`` acts only in ``init_weights``). Each
config is parsed once (cached); a full model is built once per distinct
(teacher, student) model pair, the other configs of the pair build only
their losses.
"""
import copy
import functools
import glob
import os.path as osp

import mmengine.config.utils as mmengine_cfg_utils
import pytest
import yaml
from mmengine.config import Config
from mmengine.registry import DefaultScope

from helpers import REPO_ROOT, assert_distill_log_window, untrained_teacher
from mmgdkd.models.distillers.utils import load_model_cfg

ALGOS = ('gdkd', 'dkd', 'kd')
OTHER_ALGOS = ('dist', )  # CIFAR-100 only
DATASETS = ('cifar100', 'in1k', 'tinyimagenet', 'cub200')
CIFAR_PAIRS = {
    # stem: (teacher model config, student model config, lr)
    'resnet32x4_resnet8x4': ('cifar_resnet32x4', 'cifar_resnet8x4', 0.05),
    'resnet56_resnet20': ('cifar_resnet56', 'cifar_resnet20', 0.05),
    'wrn40-2_wrn16-2': ('cifar_wrn40-2', 'cifar_wrn16-2', 0.05),
    'vgg13_vgg8': ('cifar_vgg13', 'cifar_vgg8', 0.05),
    'resnet110_resnet32': ('cifar_resnet110', 'cifar_resnet32', 0.05),
    'wrn40-2_wrn40-1': ('cifar_wrn40-2', 'cifar_wrn40-1', 0.05),
    'resnet32x4_shufflenetv1': ('cifar_resnet32x4', 'cifar_shufflenetv1',
                                0.01),
    'resnet32x4_shufflenetv2': ('cifar_resnet32x4', 'cifar_shufflenetv2',
                                0.01),
    'resnet50_mobilenetv2': ('cifar_resnet50', 'cifar_mobilenetv2', 0.01),
    'vgg13_mobilenetv2': ('cifar_vgg13', 'cifar_mobilenetv2', 0.01),
    'wrn40-2_shufflenetv1': ('cifar_wrn40-2', 'cifar_shufflenetv1', 0.01),
}
OTHER_PAIRS = {
    # config name: (teacher backbone (type, depth), student, classes, lr,
    #               max epochs, milestones)
    'resnet34_resnet18_in1k': (('ResNet', 34), ('ResNet', 18), 1000, 0.1,
                               100, [30, 60, 90]),
    'resnet50_mobilenetv1_in1k': (('ResNet', 50), ('MobileNetV1', None),
                                  1000, 0.1, 100, [30, 60, 90]),
    'resnet34_resnet18_tinyimagenet': (('ResNet', 34), ('ResNet', 18), 200,
                                       0.001, 100, [30, 60]),
    'resnet50_mobilenetv1_tinyimagenet': (('ResNet', 50),
                                          ('MobileNetV1', None), 200, 0.001,
                                          100, [30, 60]),
    'resnet34_resnet18_cub200': (('ResNet', 34), ('ResNet', 18), 200, 0.0025,
                                 100, [40, 80]),
    'resnet50_mobilenetv1_cub200': (('ResNet', 50), ('MobileNetV1', None),
                                    200, 0.0025, 100, [40, 80]),
}
# The authors' configs (ZaberKo/GDKD; docs/losses.md, "Reference
# configurations"):
# GDKD (w0, w1, w2, k, T, warm-up epochs); top-k
GDKD_REFERENCE = {
    'resnet32x4_resnet8x4': (1, 2, 8, 5, 4, 20),
    'resnet56_resnet20': (1, 1, 1, 5, 4, 20),
    'wrn40-2_wrn16-2': (1, 2, 6, 5, 4, 20),
    'vgg13_vgg8': (1, 1, 6, 5, 4, 20),
    'resnet110_resnet32': (1, 1, 1, 5, 4, 20),
    'wrn40-2_wrn40-1': (1, 2, 6, 5, 4, 20),
    'resnet32x4_shufflenetv1': (1, 1, 8, 5, 4, 20),
    'resnet32x4_shufflenetv2': (1, 1, 8, 5, 4, 20),
    'resnet50_mobilenetv2': (1, 1, 8, 5, 4, 20),
    'vgg13_mobilenetv2': (1, 1, 6, 5, 4, 20),
    'wrn40-2_shufflenetv1': (1, 2, 6, 5, 4, 20),
    'resnet34_resnet18': (0.5, 1, 1, 5, 1, 1),
    'resnet50_mobilenetv1': (0.5, 2, 2, 5, 1, 1),
}
# DKD (alpha, beta, T, warm-up)
DKD_REFERENCE = {
    'resnet32x4_resnet8x4': (1, 8, 4, 20),
    'resnet56_resnet20': (1, 2, 4, 20),
    'wrn40-2_wrn16-2': (1, 6, 4, 20),
    'vgg13_vgg8': (1, 6, 4, 20),
    'resnet110_resnet32': (1, 2, 4, 20),
    'wrn40-2_wrn40-1': (1, 6, 4, 20),
    'resnet32x4_shufflenetv1': (1, 8, 4, 20),
    'resnet32x4_shufflenetv2': (1, 8, 4, 20),
    'resnet50_mobilenetv2': (1, 8, 4, 20),
    'vgg13_mobilenetv2': (1, 6, 4, 20),
    'wrn40-2_shufflenetv1': (1, 8, 4, 20),
    'resnet34_resnet18': (1, 0.5, 1, 1),
    'resnet50_mobilenetv1': (1, 2, 1, 1),
}
# KD (T, CE weight, KD weight) by dataset; LSKD (CIFAR): T=2, 0.1 / 9
KD_REFERENCE = {'cifar100': (4, 0.1, 0.9), 'in1k': (1, 0.5, 0.5),
                'tinyimagenet': (1, 0.5, 0.5), 'cub200': (1, 0.5, 0.5)}

CONFIG_DIR = osp.join(REPO_ROOT, 'configs')
#: Teacher ensembles (a list of teachers): tested on their own below.
ENSEMBLE_CONFIGS = ('gdkd/resnet50-resnet34_resnet18_in1k.py', )
DISTILL_CONFIGS = sorted(
    p for algo in ALGOS + OTHER_ALGOS for ds in DATASETS
    for p in glob.glob(osp.join(CONFIG_DIR, algo, f'*_{ds}.py'))
    if osp.relpath(p, CONFIG_DIR) not in ENSEMBLE_CONFIGS)
TEACHER_CONFIGS = sorted(
    glob.glob(osp.join(CONFIG_DIR, 'cifar_teachers', '*.py')) +
    glob.glob(osp.join(CONFIG_DIR, 'tl_teachers', '*.py')) +
    glob.glob(osp.join(CONFIG_DIR, 'imagenet_students', '*.py')))
VARIANTS = ('gdkd3_', 'ls_')


_FROMFILE = Config.fromfile


@functools.lru_cache(None)
def _parse(path: str) -> Config:
    return _FROMFILE(path)


def load(path: str) -> Config:
    """A private copy of the parsed config (each file is parsed once)."""
    return copy.deepcopy(_parse(path))


@pytest.fixture(scope='module', autouse=True)
def cached_parsing():
    """Parse each file once in this module: mmengine re-reads MMPretrain's
    85 metafiles for every ``mmpretrain::`` base, and the distiller parses
    its students' and teachers' ``cfg_path`` again at every build."""

    def fromfile(filename, *args, **kwargs):
        if args or kwargs:
            return _FROMFILE(filename, *args, **kwargs)
        return load(str(filename))

    with pytest.MonkeyPatch.context() as mp:
        # the metafiles are only read there (mmengine.config.utils.load)
        mp.setattr(mmengine_cfg_utils, 'load',
                   functools.lru_cache(None)(mmengine_cfg_utils.load))
        mp.setattr(Config, 'fromfile', staticmethod(fromfile))
        yield


def rel(path: str) -> str:
    return osp.relpath(path, REPO_ROOT)


def split_name(path: str):
    """``(algo, variant, pair stem, dataset)`` of a distillation config."""
    algo = osp.basename(osp.dirname(path))
    name = osp.splitext(osp.basename(path))[0]
    variant = next((v for v in VARIANTS if name.startswith(v)), '')
    stem, dataset = name[len(variant):].rsplit('_', 1)
    return algo, variant, stem, dataset


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


def _ce_weight(cfg: Config) -> float:
    return load_model_cfg(cfg.model.student).head.loss.loss_weight


def test_all_classification_configs_exist():
    names = {rel(p) for p in DISTILL_CONFIGS + TEACHER_CONFIGS}
    for algo in ALGOS:
        for pair in CIFAR_PAIRS:
            assert f'configs/{algo}/{pair}_cifar100.py' in names
        for name in OTHER_PAIRS:
            assert f'configs/{algo}/{name}.py' in names
    for pair in CIFAR_PAIRS:  # the authors have GDKD3, LS and DIST for each
        assert f'configs/dist/{pair}_cifar100.py' in names
        assert f'configs/gdkd/gdkd3_{pair}_cifar100.py' in names
        assert f'configs/gdkd/ls_{pair}_cifar100.py' in names
        assert f'configs/kd/ls_{pair}_cifar100.py' in names
    for teacher in ('resnet32x4', 'resnet56', 'wrn40-2', 'vgg13',
                    'resnet110', 'resnet50'):
        assert f'configs/cifar_teachers/{teacher}_240e_cifar100.py' in names
        # AutoAugment + Cutout teachers, the authors' default
        assert f'configs/cifar_teachers/{teacher}_aug_240e_cifar100.py' \
            in names
    for data in ('tinyimagenet', 'cub200'):
        for teacher in ('resnet34', 'resnet50'):
            assert f'configs/tl_teachers/{teacher}_100e_{data}.py' in names


@pytest.mark.parametrize('path', DISTILL_CONFIGS, ids=rel)
def test_distill_config(path):
    """Parse, check the pair and the protocol, build the losses."""
    from mmpretrain.registry import MODELS
    algo, variant, stem, dataset = split_name(path)
    cfg = load(path)
    assert cfg.default_scope == 'mmpretrain'
    assert 'mmgdkd' in cfg.custom_imports.imports
    assert cfg.model.type == 'ClsDistiller'
    assert_distill_log_window(cfg)
    assert len(cfg.model.distill_losses) == 1
    if dataset == 'cifar100':
        teacher, student, lr = CIFAR_PAIRS[stem]
        assert osp.basename(cfg.model.teacher.cfg_path) == teacher + '.py'
        assert osp.basename(cfg.model.student.cfg_path) == student + '.py'
        assert cfg.optim_wrapper.optimizer == dict(
            type='SGD', lr=lr, momentum=0.9, weight_decay=5e-4)
        assert cfg.param_scheduler.milestones == [150, 180, 210]
        assert cfg.train_cfg.max_epochs == 240
        assert cfg.train_dataloader.batch_size == 64
        assert cfg.model.teacher_ckpt == 'checkpoints/cifar_teachers/' \
            f'{teacher[len("cifar_"):]}.pth'
    else:
        teacher, student, classes, lr, epochs, milestones = \
            OTHER_PAIRS[f'{stem}_{dataset}']
        for spec, (btype, depth) in ((cfg.model.teacher, teacher),
                                     (cfg.model.student, student)):
            model_cfg = load_model_cfg(spec)
            assert model_cfg.backbone.type == btype
            assert model_cfg.backbone.get('depth') == depth
            assert model_cfg.head.num_classes == classes
        assert cfg.data_preprocessor.num_classes == classes
        assert cfg.optim_wrapper.optimizer.lr == lr
        assert cfg.param_scheduler.milestones == milestones
        assert cfg.train_cfg.max_epochs == epochs
        # authors: TL wd 1e-3, batch 64; ImageNet wd 1e-4, 8 x 32
        wd, batch = (1e-4, 32) if dataset == 'in1k' else (1e-3, 64)
        assert cfg.optim_wrapper.optimizer.weight_decay == wd
        assert cfg.optim_wrapper.optimizer.momentum == 0.9
        assert cfg.train_dataloader.batch_size == batch
    for name, loss_cfg in cfg.model.distill_losses.items():
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            loss = MODELS.build(loss_cfg)
        assert type(loss).__name__ == loss_cfg.type
        assert loss.ignore_index is None  # no ignored labels (255 is a class)
        assert getattr(loss, 'logit_standardization', False) == (
            variant == 'ls_')


# one config per distinct (teacher, student) model pair: the GDKD one
BUILD_CONFIGS = [
    p for p in DISTILL_CONFIGS
    if split_name(p)[0] == 'gdkd' and not split_name(p)[1]
]


@pytest.mark.parametrize('path', BUILD_CONFIGS, ids=rel)
def test_pair_model_builds(path):
    _, _, stem, dataset = split_name(path)
    cfg = load(path)
    untrained_teacher(cfg.model)
    with pytest.warns(UserWarning, match='allow_untrained_teacher=True'):
        model = build(runner_model_cfg(cfg))
    preprocessor = model.data_preprocessor
    assert type(preprocessor).__name__ == 'ClsDataPreprocessor'
    assert preprocessor.mean.flatten().tolist() == pytest.approx(
        cfg.data_preprocessor.mean)
    classes = 100 if dataset == 'cifar100' else OTHER_PAIRS[
        f'{stem}_{dataset}'][2]
    assert model.num_classes(model.student) == classes
    assert model.teacher.head.num_classes == classes
    init = str(model.student.init_cfg) + str(model.student.backbone.init_cfg)
    if dataset in ('tinyimagenet', 'cub200'):
        # ImageNet-pretrained student (loaded by init_weights, not here)
        assert 'Pretrained' in init
        assert model.teacher.backbone.init_cfg is None
    else:
        assert 'Pretrained' not in init


@pytest.mark.parametrize('path', TEACHER_CONFIGS, ids=rel)
def test_teacher_training_config(path):
    cfg = load(path)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.type == 'ImageClassifier'
    name = osp.basename(path)
    if name.endswith('_cifar100.py'):
        assert cfg.model.head.num_classes == 100
        assert cfg.train_cfg.max_epochs == 240
        assert cfg.optim_wrapper.optimizer.lr == 0.05
        assert cfg.train_dataloader.batch_size == 64
    elif name.endswith('_in1k.py'):
        assert cfg.model.head.num_classes == 1000
        assert cfg.train_cfg.max_epochs == 100
    else:
        assert cfg.model.head.num_classes == 200
        assert 'Pretrained' in str(cfg.model.backbone.init_cfg)
        data = name[:-3].rsplit('_', 1)[1]
        lr, milestones = OTHER_PAIRS[f'resnet34_resnet18_{data}'][3::2]
        assert cfg.optim_wrapper.optimizer.lr == lr
        assert cfg.param_scheduler.milestones == milestones
        assert cfg.optim_wrapper.optimizer.weight_decay == 1e-3


def test_teacher_training_models_build():
    """One build per distinct teacher model (the CIFAR ones the pairs do
    not cover build here; the parsing test checks the others)."""
    for name in ('resnet110_240e_cifar100', 'resnet50_240e_cifar100'):
        cfg = load(osp.join(CONFIG_DIR, 'cifar_teachers', name + '.py'))
        model = build(runner_model_cfg(cfg))
        assert model.head.num_classes == 100


def test_cifar_data_protocol():
    """CRD / mdistiller: batch 64, random crop (pad 4) + flip."""
    for path in TEACHER_CONFIGS + DISTILL_CONFIGS:
        if not path.endswith('_cifar100.py') or '_aug_' in path:
            continue
        cfg = load(path)
        assert cfg.train_dataloader.dataset.type == 'CIFAR100'
        assert cfg.train_dataloader.dataset.data_root == 'data/cifar100'
        assert [t.type for t in cfg.train_pipeline] == [
            'RandomCrop', 'RandomFlip', 'PackInputs'
        ]
        assert cfg.train_pipeline[0].padding == 4


def test_imagenet_teachers_are_the_model_zoo_resnets():
    import mmpretrain
    metafile = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'configs', 'resnet',
        'metafile.yml')
    with open(metafile) as f:
        models = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    for algo in ALGOS:
        for name, zoo in (('resnet34_resnet18_in1k', 'resnet34_8xb32_in1k'),
                          ('resnet50_mobilenetv1_in1k',
                           'resnet50_8xb32_in1k')):
            cfg = load(osp.join(CONFIG_DIR, algo, name + '.py'))
            assert cfg.model.teacher_ckpt == models[zoo]['Weights']
            assert cfg.train_dataloader.batch_size == 32  # x 8 GPUs
    for data in ('tinyimagenet', 'cub200'):
        for depth in (34, 50):
            cfg = load(osp.join(CONFIG_DIR, 'tl_teachers',
                                f'resnet{depth}_100e_{data}.py'))
            assert cfg.model.backbone.init_cfg.checkpoint == models[
                f'resnet{depth}_8xb32_in1k']['Weights']


@pytest.mark.parametrize('path', [
    p for p in DISTILL_CONFIGS if split_name(p)[0] == 'gdkd'
], ids=rel)
def test_gdkd_reference_hyper_parameters(path):
    _, variant, stem, _ = split_name(path)
    cfg = load(path)
    loss = cfg.model.distill_losses.loss_gdkd
    w0, w1, w2, k, T, warmup = GDKD_REFERENCE[stem]
    if variant == 'gdkd3_':
        # the authors' GDKD3 defaults: k=4, groups top-1 / top-2..k / rest
        assert loss.strategy == 'topk3' and k == 5
        k = 4
    else:
        assert loss.strategy == 'topk'
    assert (loss.w0, loss.w1, loss.w2, loss.k, loss.temperature,
            cfg.model.warmup_epochs) == (w0, w1, w2, k, T, warmup)
    assert loss.kl_type == 'forward'
    assert loss.get('logit_standardization', False) == (variant == 'ls_')
    assert cfg.model.get('head_weights') is None  # the head, weight 1
    assert _ce_weight(cfg) == 1.0


@pytest.mark.parametrize('path', [
    p for p in DISTILL_CONFIGS if split_name(p)[0] == 'dkd'
], ids=rel)
def test_dkd_reference_hyper_parameters(path):
    _, _, stem, _ = split_name(path)
    cfg = load(path)
    loss = cfg.model.distill_losses.loss_dkd
    assert (loss.alpha, loss.beta, loss.temperature,
            cfg.model.warmup_epochs) == DKD_REFERENCE[stem]
    assert _ce_weight(cfg) == 1.0


@pytest.mark.parametrize('path', [
    p for p in DISTILL_CONFIGS if split_name(p)[0] == 'kd'
], ids=rel)
def test_kd_reference_hyper_parameters(path):
    _, variant, _, dataset = split_name(path)
    cfg = load(path)
    loss = cfg.model.distill_losses.loss_kd
    if variant == 'ls_':  # the authors' LSKD defaults
        temperature, ce_weight, kd_weight = 2, 0.1, 9.0
        assert loss.logit_standardization is True
    else:
        temperature, ce_weight, kd_weight = KD_REFERENCE[dataset]
    assert loss.temperature == temperature
    assert loss.loss_weight == kd_weight
    assert _ce_weight(cfg) == ce_weight
    assert not cfg.model.get('warmup_epochs')


@pytest.mark.parametrize('path', [
    p for p in DISTILL_CONFIGS if split_name(p)[0] == 'dist'
], ids=rel)
def test_dist_reference_hyper_parameters(path):
    """The GDKD authors' DIST defaults: beta=gamma=2, tau=4, CE weight 1."""
    cfg = load(path)
    loss = cfg.model.distill_losses.loss_dist
    assert (loss.beta, loss.gamma, loss.temperature, loss.loss_weight) == (
        2.0, 2.0, 4.0, 1.0)
    assert _ce_weight(cfg) == 1.0
    assert not cfg.model.get('warmup_epochs')


def test_teacher_ensemble_config():
    """ResNet-50 + ResNet-34 (MMPretrain zoo) -> ResNet-18, 'prob' mode."""
    import mmpretrain
    metafile = osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'configs', 'resnet',
        'metafile.yml')
    with open(metafile) as f:
        models = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    cfg = Config.fromfile(osp.join(CONFIG_DIR, ENSEMBLE_CONFIGS[0]))
    assert cfg.model.teacher_ckpt == [
        models['resnet50_8xb32_in1k']['Weights'],
        models['resnet34_8xb32_in1k']['Weights']
    ]
    assert cfg.model.teacher_ensemble == 'prob'
    assert cfg.train_cfg.max_epochs == 100
    loss = cfg.model.distill_losses.loss_gdkd
    # the authors' ImageNet R34 -> R18 hyper-parameters (configs/README.md)
    assert (loss.w0, loss.w1, loss.w2, loss.k, loss.temperature,
            cfg.model.warmup_epochs) == GDKD_REFERENCE['resnet34_resnet18']
    assert loss.ignore_index is None
    untrained_teacher(cfg.model)
    with pytest.warns(UserWarning, match='allow_untrained_teacher=True'):
        model = build(runner_model_cfg(cfg))
    assert [t.backbone.depth for t in model.teachers] == [50, 34]
    assert model.student.backbone.depth == 18
    assert model.num_classes(model.student) == 1000
    for init in [t.init_cfg for t in model.teachers]:
        assert 'Pretrained' not in str(init)
