# Copyright (c) mmgdkd contributors. All rights reserved.
"""The CIFAR knowledge-distillation backbones (CRD / mdistiller models)."""
from typing import Sequence

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

import mmgdkd  # noqa: F401  (compat shims and registration)
from mmgdkd.models.backbones import CIFARVGG, CIFARResNet, CIFARWideResNet

NUM_CLASSES = 100

# arch -> (backbone type, channels and side of the last 32x32-input feature,
# parameters of backbone + 100-class linear head, published size in M).
# The exact counts follow from the reference definitions (mdistiller's
# models/cifar/{resnet,wrn,vgg}.py; mdistiller's 'vgg8'/'vgg13' are its
# vgg8_bn/vgg13_bn); ``_formula_params`` below re-derives them.
# The published sizes (CRD-style tables) truncate rather than round in
# places: resnet110 1.7366M -> 1.73, vgg8 3.9650M -> 3.96, and resnet20
# 0.2783M is listed as 0.28 or 0.27.
ARCHS = {
    'resnet8x4': ('CIFARResNet', 256, 8, 1_233_540, (1.23, )),
    'resnet32x4': ('CIFARResNet', 256, 8, 7_433_860, (7.43, )),
    'resnet20': ('CIFARResNet', 64, 8, 278_324, (0.28, 0.27)),
    'resnet32': ('CIFARResNet', 64, 8, 472_756, (0.47, )),
    'resnet56': ('CIFARResNet', 64, 8, 861_620, (0.86, )),
    'resnet110': ('CIFARResNet', 64, 8, 1_736_564, (1.73, )),
    'wrn_16_2': ('CIFARWideResNet', 128, 8, 703_284, (0.70, )),
    'wrn_40_1': ('CIFARWideResNet', 64, 8, 569_780, (0.57, )),
    'wrn_40_2': ('CIFARWideResNet', 128, 8, 2_255_156, (2.26, )),
    'vgg8': ('CIFARVGG', 512, 4, 3_965_028, (3.96, )),
    'vgg13': ('CIFARVGG', 512, 4, 9_462_180, (9.46, )),
}
BACKBONES = {
    'CIFARResNet': CIFARResNet,
    'CIFARWideResNet': CIFARWideResNet,
    'CIFARVGG': CIFARVGG,
}


def _classifier_cfg(arch: str) -> dict:
    backbone_type, channels = ARCHS[arch][:2]
    return dict(
        type='ImageClassifier',
        backbone=dict(type=backbone_type, arch=arch),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=NUM_CLASSES,
            in_channels=channels,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))


def _num_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _formula_params(arch: str) -> int:
    """Closed-form parameter count of the reference models + linear head."""

    def conv(c_in, c_out, k=3, bias=False):
        return k * k * c_in * c_out + (c_out if bias else 0)

    def bn(c):
        return 2 * c

    if arch.startswith('resnet'):
        depth, *_ = [int(s) for s in arch[6:].split('x')]
        widths = (32, 64, 128, 256) if arch.endswith('x4') else (16, 16, 32,
                                                                 64)
        n = (depth - 2) // 6
        total, c_in = conv(3, widths[0]) + bn(widths[0]), widths[0]
        for c, stride in zip(widths[1:], (1, 2, 2)):
            for b in range(n):
                total += conv(c_in, c) + bn(c) + conv(c, c) + bn(c)
                if b == 0 and (stride != 1 or c_in != c):
                    total += conv(c_in, c, k=1) + bn(c)
                c_in = c
    elif arch.startswith('wrn'):
        depth, k = (int(s) for s in arch.split('_')[1:])
        n = (depth - 4) // 6
        total, c_in = conv(3, 16), 16
        for c in (16 * k, 32 * k, 64 * k):
            for b in range(n):
                total += bn(c_in) + conv(c_in, c) + bn(c) + conv(c, c)
                if c_in != c:
                    total += conv(c_in, c, k=1)
                c_in = c
        total += bn(c_in)
    else:
        total, c_in = 0, 3
        for c in CIFARVGG.arch_zoo[arch]:
            for width in c:
                total += conv(c_in, width, bias=True) + bn(width)
                c_in = width
    return total + c_in * NUM_CLASSES + NUM_CLASSES


@pytest.mark.parametrize('arch', list(ARCHS))
def test_backbone_last_stage_shape(arch):
    backbone_type, channels, side = ARCHS[arch][:3]
    model = BACKBONES[backbone_type](arch=arch)
    outs = model(torch.rand(2, 3, 32, 32))
    assert isinstance(outs, tuple) and len(outs) == 1
    assert outs[0].shape == (2, channels, side, side)
    assert model.stage_channels[-1] == channels


@pytest.mark.parametrize('arch,stage_shapes', [
    ('resnet8x4', [(64, 32), (128, 16), (256, 8)]),
    ('resnet20', [(16, 32), (32, 16), (64, 8)]),
    ('wrn_40_2', [(32, 32), (64, 16), (128, 8)]),
    ('wrn_40_1', [(16, 32), (32, 16), (64, 8)]),
    ('vgg13', [(64, 32), (128, 16), (256, 8), (512, 4), (512, 4)]),
])
def test_all_stage_shapes(arch, stage_shapes):
    cls = BACKBONES[ARCHS[arch][0]]
    model = cls(arch=arch, out_indices=range(cls.num_stages))
    outs = model(torch.rand(2, 3, 32, 32))
    assert [(o.shape[1], o.shape[2]) for o in outs] == stage_shapes
    assert all(o.shape[2] == o.shape[3] for o in outs)
    assert tuple(c for c, _ in stage_shapes) == model.stage_channels


@pytest.mark.parametrize('arch', list(ARCHS))
def test_image_classifier_tensor_and_loss(arch):
    torch.manual_seed(0)
    model = PRETRAIN_MODELS.build(_classifier_cfg(arch))
    model.init_weights()

    model.eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, NUM_CLASSES)

    model.train()
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
            for _ in range(2)
        ],
        data_samples=[DataSample().set_gt_label(label) for label in (3, 7)])
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    first_conv = next(p for n, p in model.backbone.named_parameters()
                      if p.dim() == 4)
    before = first_conv.detach().clone()
    log_vars = model.train_step(data, optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(before, first_conv.detach())


@pytest.mark.parametrize('arch', list(ARCHS))
def test_param_count(arch):
    exact, published = ARCHS[arch][3:]
    model = PRETRAIN_MODELS.build(_classifier_cfg(arch))
    count = _num_params(model)
    assert count == exact
    assert count == _formula_params(arch)
    for size in published:
        assert abs(count / 1e6 - size) <= 0.01 + 1e-9, (arch, count, size)


@pytest.mark.parametrize('cls,bad', [(CIFARResNet, 'resnet18'),
                                     (CIFARWideResNet, 'wrn_28_10'),
                                     (CIFARVGG, 'vgg8_bn')])
def test_unknown_arch_is_named_with_choices(cls, bad):
    with pytest.raises(ValueError) as direct:
        cls(arch=bad)
    message = str(direct.value)
    assert repr(bad) in message
    assert all(repr(name) in message for name in cls.arch_zoo)
    # The registry keeps the type and message when building from a config.
    with pytest.raises(ValueError, match=repr(bad)):
        PRETRAIN_MODELS.build(dict(type=cls.__name__, arch=bad))


def test_resnet_custom_arch_and_depth_checks():
    custom = CIFARResNet(arch=dict(depth=20, widths=(16, 16, 32, 64)))
    named = CIFARResNet(arch='resnet20')
    assert _num_params(custom) == _num_params(named)
    bottleneck = CIFARResNet(
        arch=dict(depth=29, widths=(16, 16, 32, 64), block='bottleneck'))
    assert bottleneck.stage_channels == (64, 128, 256)
    assert bottleneck(torch.rand(1, 3, 32, 32))[0].shape == (1, 256, 8, 8)
    with pytest.raises(ValueError, match='6n \\+ 2'):
        CIFARResNet(arch=dict(depth=21, widths=(16, 16, 32, 64)))
    with pytest.raises(ValueError, match="'basic', 'bottleneck'"):
        CIFARResNet(arch=dict(depth=20, widths=(16, ) * 4, block='wide'))


def test_wrn_arch_or_depth():
    by_depth = CIFARWideResNet(depth=40, widen_factor=2)
    assert _num_params(by_depth) == _num_params(CIFARWideResNet('wrn_40_2'))
    with pytest.raises(ValueError, match='not both'):
        CIFARWideResNet(arch='wrn_40_2', depth=40)
    with pytest.raises(ValueError, match='6n \\+ 4'):
        CIFARWideResNet(depth=20)
    with pytest.raises(ValueError, match="'wrn_40_2'"):
        CIFARWideResNet()


def test_wrn_dropout_only_in_training():
    torch.manual_seed(0)
    model = CIFARWideResNet('wrn_16_2', drop_rate=0.3)
    x = torch.rand(2, 3, 32, 32)
    model.train()
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])


def test_vgg_last_stage_pooling():
    model = CIFARVGG('vgg8')
    # Reference rule: pool before the last stage only for 64x64 inputs.
    assert model(torch.rand(1, 3, 64, 64))[0].shape[-1] == 4
    assert model(torch.rand(1, 3, 32, 32))[0].shape[-1] == 4
    forced = CIFARVGG('vgg8', downsample_last_stage=True)
    assert forced(torch.rand(1, 3, 32, 32))[0].shape[-1] == 2
    plain = CIFARVGG('vgg8', norm_cfg=None)
    assert not any(isinstance(m, _BatchNorm) for m in plain.modules())


def test_out_indices_normalized():
    model = CIFARResNet('resnet20', out_indices=(-1, 0, 2))
    assert model.out_indices == (0, 2)
    assert len(model(torch.rand(1, 3, 32, 32))) == 2
    with pytest.raises(ValueError, match='out of range'):
        CIFARResNet('resnet20', out_indices=(3, ))
    with pytest.raises(ValueError, match='out of range'):
        CIFARVGG('vgg8', out_indices=(-6, ))


def _frozen(modules: Sequence[torch.nn.Module]) -> bool:
    return all(not m.training and all(not p.requires_grad
                                      for p in m.parameters())
               for m in modules)


def test_frozen_stages():
    resnet = CIFARResNet('resnet20', frozen_stages=1)
    resnet.train()
    assert _frozen([resnet.conv1, resnet.bn1, resnet.layer1])
    assert resnet.layer2.training
    assert all(p.requires_grad for p in resnet.layer2.parameters())

    wrn = CIFARWideResNet('wrn_16_2', frozen_stages=3)
    wrn.train()
    assert _frozen([wrn.conv1, wrn.block1, wrn.block2, wrn.block3, wrn.bn1])

    vgg = CIFARVGG('vgg8', frozen_stages=2)
    vgg.train()
    assert _frozen([vgg.block0, vgg.block1])
    assert vgg.block2.training
    assert all(p.requires_grad for p in vgg.block2.parameters())

    with pytest.raises(ValueError, match='frozen_stages'):
        CIFARResNet('resnet20', frozen_stages=4)


@pytest.mark.parametrize('cls,arch', [(CIFARResNet, 'resnet8x4'),
                                      (CIFARWideResNet, 'wrn_16_2'),
                                      (CIFARVGG, 'vgg8')])
def test_norm_eval(cls, arch):
    model = cls(arch=arch, norm_eval=True)
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    assert all(p.requires_grad for p in model.parameters())


def test_default_init_matches_reference():
    torch.manual_seed(0)
    model = CIFARVGG('vgg8')
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.constant_(m.bias, 1.0)
        elif isinstance(m, _BatchNorm):
            torch.nn.init.constant_(m.weight, 0.5)
    model.init_weights()
    conv = model.block3[0]
    he_std = (2 / (conv.out_channels * 9))**0.5  # Kaiming, fan_out mode
    assert torch.all(conv.bias == 0)
    assert abs(conv.weight.std().item() - he_std) < 0.05 * he_std
    assert all(
        torch.all(m.weight == 1) for m in model.modules()
        if isinstance(m, _BatchNorm))


@pytest.mark.parametrize('arch,keys', [
    ('resnet8x4', {
        'conv1.weight': (32, 3, 3, 3),
        'layer1.0.downsample.0.weight': (64, 32, 1, 1),
        'layer3.0.downsample.1.running_var': (256, ),
        'layer3.0.bn2.weight': (256, ),
    }),
    ('wrn_40_2', {
        'conv1.weight': (16, 3, 3, 3),
        'block1.layer.0.convShortcut.weight': (32, 16, 1, 1),
        'block3.layer.5.conv2.weight': (128, 128, 3, 3),
        'bn1.running_mean': (128, ),
    }),
    ('vgg13', {
        'block0.0.bias': (64, ),
        'block0.4.running_mean': (64, ),
        'block4.3.weight': (512, 512, 3, 3),
        'block4.4.weight': (512, ),
    }),
])
def test_reference_checkpoint_keys(arch, keys):
    """Module names match the reference so teacher checkpoints load."""
    state = BACKBONES[ARCHS[arch][0]](arch=arch).state_dict()
    assert {k: tuple(state[k].shape) for k in keys if k in state} == keys
    # WRN blocks keep the identity shortcut when the shape is unchanged.
    assert 'block1.layer.1.convShortcut.weight' not in state


def test_registered_in_both_hosts():
    from mmseg.registry import MODELS as SEG_MODELS
    for name in BACKBONES:
        assert PRETRAIN_MODELS.get(name) is BACKBONES[name]
        assert SEG_MODELS.get(name) is BACKBONES[name]
