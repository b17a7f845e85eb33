# Copyright (c) mmgdkd contributors. All rights reserved.
"""tools/model_converters/cifar_kd_teacher.py on fabricated CRD checkpoints.

A CRD / mdistiller teacher checkpoint is fabricated from an mmgdkd model by
renaming its keys back to the reference layout (``backbone.`` dropped, the
head's ``fc`` named ``fc`` or ``classifier``); the converted checkpoint must
load strictly into a fresh ``ImageClassifier`` and give identical logits.
"""
import importlib.util
import os.path as osp
import subprocess

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from helpers import REPO_ROOT
from mmgdkd.models.distillers.utils import load_model_cfg

TOOL = osp.join(REPO_ROOT, 'tools', 'model_converters', 'cifar_kd_teacher.py')
# model config -> the reference name of its linear classifier
ARCHS = {'resnet8x4': 'fc', 'wrn16-2': 'fc', 'vgg8': 'classifier'}


def load_tool():
    spec = importlib.util.spec_from_file_location('cifar_kd_teacher', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_cfg_path(arch: str) -> str:
    return osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                    f'cifar_{arch}.py')


def build(arch: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(load_model_cfg(model_cfg_path(arch)))
    # non-trivial BN statistics, so that a mis-loaded buffer shows
    for name, buf in model.named_buffers():
        if name.endswith('running_mean'):
            buf.normal_()
        elif name.endswith('running_var'):
            buf.uniform_(0.5, 2.0)
    return model.eval()


def fabricate_reference(model: torch.nn.Module, classifier: str,
                        data_parallel: bool = False) -> dict:
    """The model's weights in the CRD / mdistiller checkpoint layout."""
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith('head.fc.'):
            key = classifier + '.' + key[len('head.fc.'):]
        else:
            assert key.startswith('backbone.'), key
            key = key[len('backbone.'):]
        state[('module.' if data_parallel else '') + key] = value.clone()
    return {'model': state, 'epoch': 240, 'best_acc': torch.tensor(79.42),
            'optimizer': {'state': {}, 'param_groups': []}}


@pytest.mark.parametrize('arch', sorted(ARCHS))
def test_converted_checkpoint_gives_identical_logits(arch):
    tool = load_tool()
    source = build(arch, seed=0)
    reference = fabricate_reference(source, ARCHS[arch])
    converted = tool.convert(reference, source='ckpt_epoch_240.pth')

    assert converted['meta']['epoch'] == 240
    assert converted['meta']['best_acc'] == pytest.approx(79.42)
    assert converted['meta']['num_classes'] == 100
    target = build(arch, seed=1)
    target.load_state_dict(converted['state_dict'], strict=True)
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(inputs), target(inputs))


def test_command_line_with_strict_verification(tmp_path, python_exe,
                                               python_env):
    source = build('vgg8', seed=0)
    src = str(tmp_path / 'ckpt_epoch_240.pth')
    torch.save(fabricate_reference(source, 'classifier', data_parallel=True),
               src)
    dst = str(tmp_path / 'converted' / 'vgg8.pth')
    proc = subprocess.run(
        [python_exe, TOOL, src, dst, '--config', model_cfg_path('vgg8')],
        cwd=REPO_ROOT, env=python_env, capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'strict load' in proc.stdout

    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(saved) == {'state_dict', 'meta'}
    assert all(k.startswith(('backbone.block', 'head.fc.'))
               for k in saved['state_dict'])
    target = build('vgg8', seed=1)
    target.load_state_dict(saved['state_dict'], strict=True)
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(inputs), target(inputs))


def test_rejects_checkpoints_without_a_classifier():
    tool = load_tool()
    with pytest.raises(ValueError, match='no classifier'):
        tool.convert({'model': {'conv1.weight': torch.zeros(1)}})
    with pytest.raises(ValueError, match='no state dict'):
        tool.convert({'epoch': 3})


@pytest.mark.parametrize('arch,classifier', [('shufflenetv1', 'linear'),
                                             ('shufflenetv2', 'linear'),
                                             ('mobilenetv2', 'classifier.0')])
def test_light_students_convert(arch, classifier):
    tool = load_tool()
    source = build(arch, seed=0)
    converted = tool.convert(fabricate_reference(source, classifier))
    target = build(arch, seed=1)
    target.load_state_dict(converted['state_dict'], strict=True)
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(source(inputs), target(inputs))


def reference_resnet50_state() -> dict:
    """Key names and shapes of mdistiller's ``resnetv2.ResNet50`` (100
    classes), written out from its definition: 3x3 stem, bottlenecks
    ``conv1/bn1 .. conv3/bn3`` with a ``shortcut`` projection in each
    stage's first block, ``linear`` classifier."""
    g = torch.Generator().manual_seed(0)
    shapes = {'conv1.weight': (64, 3, 3, 3)}

    def bn(prefix, c):
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{prefix}.{name}'] = (c, )
        shapes[f'{prefix}.num_batches_tracked'] = ()

    bn('bn1', 64)
    c_in = 64
    for s, (planes, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
        for b in range(n):
            p = f'layer{s + 1}.{b}'
            shapes[f'{p}.conv1.weight'] = (planes, c_in, 1, 1)
            bn(f'{p}.bn1', planes)
            shapes[f'{p}.conv2.weight'] = (planes, planes, 3, 3)
            bn(f'{p}.bn2', planes)
            shapes[f'{p}.conv3.weight'] = (4 * planes, planes, 1, 1)
            bn(f'{p}.bn3', 4 * planes)
            if b == 0:
                shapes[f'{p}.shortcut.0.weight'] = (4 * planes, c_in, 1, 1)
                bn(f'{p}.shortcut.1', 4 * planes)
            c_in = 4 * planes
    shapes['linear.weight'] = (100, 2048)
    shapes['linear.bias'] = (100, )
    state = {}
    for key, shape in shapes.items():
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(0)
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.05
    return state


def test_resnet50_teacher_layout_converts():
    """The published ResNet50 teacher (``shortcut``, ``linear``) loads
    strictly into MMPretrain's ResNet_CIFAR-50 classifier."""
    tool = load_tool()
    reference = reference_resnet50_state()
    converted = tool.convert({'model': reference, 'epoch': 240})
    state = converted['state_dict']
    assert 'backbone.layer1.0.downsample.0.weight' in state
    assert not any('shortcut' in k for k in state)
    model = build('resnet50', seed=1)
    model.load_state_dict(state, strict=True)
    torch.testing.assert_close(
        model.head.fc.weight, reference['linear.weight'], rtol=0, atol=0)
    torch.testing.assert_close(
        model.backbone.layer4[0].downsample[1].running_var,
        reference['layer4.0.shortcut.1.running_var'], rtol=0, atol=0)
