# Copyright (c) mmgdkd contributors. All rights reserved.
"""DISTLoss and logit-standardized GDKD inside ClsDistiller: the logged
terms equal the loss modules on both models' logits."""
import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


def classifier(arch):
    return dict(
        type='ImageClassifier',
        backbone=dict(type='CIFARResNet', arch=arch),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        data_preprocessor=dict(num_classes=10, mean=[125.0] * 3,
                               std=[63.0] * 3, to_rgb=False))


@pytest.fixture(scope='module')
def distiller(tmp_path_factory):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(1)
        teacher = MODELS.build(classifier('resnet14'))
        path = str(tmp_path_factory.mktemp('t') / 'teacher.pth')
        torch.save({'state_dict': teacher.state_dict()}, path)
        torch.manual_seed(0)
        return MODELS.build(dict(
            type='ClsDistiller',
            student=classifier('resnet8'),
            teacher=classifier('resnet14'),
            teacher_ckpt=path,
            distill_losses=dict(
                loss_dist=dict(type='DISTLoss', beta=2.0, gamma=2.0,
                               temperature=4.0),
                loss_gdkd=dict(type='GDKDLoss', k=3, w2=4.0, temperature=4.0,
                               ignore_index=None,
                               logit_standardization=True))))


def test_dist_and_ls_gdkd_in_a_step(distiller):
    gen = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[torch.randint(0, 255, (3, 32, 32), generator=gen,
                              dtype=torch.uint8) for _ in range(6)],
        data_samples=[DataSample().set_gt_label(i) for i in range(6)])
    distiller.train()
    data = distiller.data_preprocessor(data, True)
    losses = distiller(**data, mode='loss')
    with torch.no_grad():
        s = distiller.student(data['inputs'])
        t = distiller.teacher(data['inputs'])
    target = torch.arange(6)
    for name in ('loss_dist', 'loss_gdkd'):
        module = distiller.distill_losses[name]
        torch.testing.assert_close(losses[f'distill.head.{name}'],
                                   module(s, t, target))
    assert {'distill.head.dist_inter', 'distill.head.dist_intra',
            'distill.head.gdkd_high'} <= set(losses)
    torch.testing.assert_close(
        losses['distill.head.loss_dist'],
        2.0 * (losses['distill.head.dist_inter'] +
               losses['distill.head.dist_intra']))
    total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    grad = distiller.student.backbone.conv1.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
