# Copyright (c) mmgdkd contributors. All rights reserved.
"""Build-time checks: untrained teachers, class-count-dependent options."""
import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from mmgdkd.models.distillers.checks import (check_losses_fit_classes,
                                             check_teacher_weights,
                                             pretrained_init)
from mmgdkd.models.losses import GDKDLoss

NUM_CLASSES = 10


def classifier(arch='resnet8', **extra) -> dict:
    return dict(
        type='ImageClassifier',
        backbone=dict(type='CIFARResNet', arch=arch),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                  in_channels=64,
                  loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
        **extra)


def build(**kwargs):
    cfg = dict(type='ClsDistiller', student=classifier(),
               teacher=classifier('resnet14'),
               distill_losses=dict(loss_gdkd=dict(type='GDKDLoss', k=3,
                                                  ignore_index=None)))
    cfg.update(kwargs)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


def test_random_teacher_is_refused_by_default():
    with pytest.raises(ValueError, match=r'teacher_ckpt is None .*randomly '
                       r'initialised teacher.*allow_untrained_teacher=True'):
        build()


def test_random_teacher_allowed_on_request():
    with pytest.warns(UserWarning, match='allow_untrained_teacher=True'):
        model = build(allow_untrained_teacher=True)
    assert model.teacher is not None


@pytest.mark.parametrize('where', ['init_cfg', 'pretrained'])
def test_whole_model_pretrained_init_loads_the_teacher(tmp_path, where):
    """A teacher whose config initialises it from a checkpoint is accepted,
    and that checkpoint is what it holds (the runner never initialises the
    teacher: it is not a submodule)."""
    torch.manual_seed(5)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        trained = MODELS.build(classifier('resnet14'))
    path = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': trained.state_dict(), 'meta': {}}, path)
    extra = (dict(init_cfg=dict(type='Pretrained', checkpoint=path))
             if where == 'init_cfg' else dict(pretrained=path))
    model = build(teacher=classifier('resnet14', **extra))
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(model.teacher.state_dict()[key], value,
                                   rtol=0, atol=0)


def test_backbone_only_pretrained_is_named_in_the_refusal():
    """MMSeg's `pretrained` initialises the backbone only."""
    seg_teacher = dict(type='EncoderDecoder', pretrained='r18.pth',
                       backbone=dict(type='ResNetV1c'))
    with pytest.raises(ValueError, match='backbone only; the heads would '
                       'be random'):
        check_teacher_weights(seg_teacher, None, False)
    assert pretrained_init(seg_teacher) is None
    # a prefixed Pretrained init loads a part of the model only
    assert pretrained_init(dict(init_cfg=dict(
        type='Pretrained', checkpoint='x.pth', prefix='backbone'))) is None
    assert check_teacher_weights(seg_teacher, 'teacher.pth', False) is False


@pytest.mark.parametrize('loss,match', [
    (dict(k=10), r'distill_losses.loss_gdkd \(GDKDLoss\): k=10 must be < '
     r'the number of classes C=10'),
    (dict(k=12, strategy='topk3'), 'k=12'),
    (dict(k=10, strategy='worst'), 'k=10'),
    (dict(strategy='adaptive', max_k=11), 'max_k=11'),
])
def test_class_count_dependent_options_fail_at_build(loss, match):
    losses = dict(loss_gdkd=dict(type='GDKDLoss', ignore_index=None, **loss))
    with pytest.raises(ValueError, match=match):
        build(allow_untrained_teacher=True, distill_losses=losses)


def test_options_that_fit_are_accepted():
    for loss in (dict(k=9), dict(strategy='adaptive'),
                 dict(strategy='adaptive', max_k=9)):
        check_losses_fit_classes(
            dict(loss_gdkd=GDKDLoss(**loss)), NUM_CLASSES)
    # unknown class count: nothing to check against
    check_losses_fit_classes(dict(loss_gdkd=GDKDLoss(k=50)), None)
