# Copyright (c) mmgdkd contributors. All rights reserved.
"""ClsDistiller: wiring, frozen teacher, checkpoints, soft labels, errors."""
import uuid

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from helpers import untrained_teacher

NUM_CLASSES = 10
GDKD = dict(
    type='GDKDLoss',
    k=3,
    w0=1.0,
    w1=2.0,
    w2=4.0,
    temperature=4.0,
    ignore_index=None)
DKD = dict(
    type='DKDLoss', alpha=1.0, beta=8.0, temperature=4.0, ignore_index=None)


@MODELS.register_module(force=True)
class _OwnLossHead(LinearClsHead):
    """A head whose loss() is not ClsHead's (e.g. adds a term)."""

    def loss(self, feats, data_samples, **kwargs):
        losses = super().loss(feats, data_samples, **kwargs)
        losses['loss_extra'] = feats[-1].new_zeros(())
        return losses


def classifier(arch='resnet8', num_classes=NUM_CLASSES, **head) -> dict:
    channels = {'resnet8': 64, 'resnet14': 64, 'resnet8x4': 256}[arch]
    return dict(
        type='ImageClassifier',
        backbone=dict(type='CIFARResNet', arch=arch),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=num_classes,
            in_channels=channels,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
            **head),
        data_preprocessor=dict(
            num_classes=num_classes,
            mean=[125.0, 123.0, 114.0],
            std=[63.0, 62.0, 66.0],
            to_rgb=False))


def build_model(cfg: dict):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory) -> str:
    torch.manual_seed(1)
    teacher = build_model(classifier('resnet14'))
    path = str(tmp_path_factory.mktemp('teacher') / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return path


def build_distiller(teacher_ckpt, losses=None, **kwargs):
    cfg = dict(
        type='ClsDistiller',
        student=classifier('resnet8'),
        teacher=classifier('resnet14'),
        teacher_ckpt=teacher_ckpt,
        distill_losses=dict(loss_gdkd=GDKD) if losses is None else losses)
    if teacher_ckpt is None:
        # tests of other build-time errors: no weights on purpose
        untrained_teacher(cfg)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return build_model(cfg)


def batch(n=4, seed=0, labels=None):
    gen = torch.Generator().manual_seed(seed)
    if labels is None:
        labels = torch.randint(0, NUM_CLASSES, (n, ), generator=gen).tolist()
    samples = [DataSample().set_gt_label(int(label)) for label in labels]
    inputs = [
        torch.randint(0, 255, (3, 32, 32), generator=gen, dtype=torch.uint8)
        for _ in range(n)
    ]
    return dict(inputs=inputs, data_samples=samples)


@pytest.fixture
def message_hub():
    """A fresh current MessageHub (warm-up reads epoch/iter from it)."""
    return MessageHub.get_instance(f'test_cls_distiller_{uuid.uuid4().hex}')


@pytest.fixture
def distiller(teacher_ckpt):
    return build_distiller(teacher_ckpt)


def test_registered_and_exported():
    from mmgdkd.models.distillers import ClsDistiller
    assert MODELS.get('ClsDistiller') is ClsDistiller


def test_teacher_frozen_in_eval_and_outside_the_trainable_model(distiller):
    distiller.train()
    assert distiller.student.training
    assert all(not m.training for m in distiller.teacher.modules())
    assert all(not p.requires_grad for p in distiller.teacher.parameters())
    teacher_params = {id(p) for p in distiller.teacher.parameters()}
    assert not teacher_params & {id(p) for p in distiller.parameters()}
    assert 'teacher' not in dict(distiller.named_children())


def test_teacher_weights_come_from_checkpoint(distiller, teacher_ckpt):
    saved = torch.load(teacher_ckpt, weights_only=True)['state_dict']
    for key, value in distiller.teacher.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_state_dict_is_the_plain_student(distiller):
    plain = build_model(classifier('resnet8'))
    state = distiller.state_dict()
    assert list(state) == list(plain.state_dict())
    assert not any(k.startswith(('teacher.', 'student.')) for k in state)


def test_loads_a_plain_classifier_state_dict(distiller):
    torch.manual_seed(5)
    plain = build_model(classifier('resnet8'))
    teacher_before = {
        k: v.clone()
        for k, v in distiller.teacher.state_dict().items()
    }
    distiller.load_state_dict(plain.state_dict(), strict=True)
    for key, value in plain.state_dict().items():
        assert torch.equal(distiller.student.state_dict()[key], value), key
    for key, value in distiller.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key


def test_predict_and_tensor_are_the_student(distiller):
    distiller.eval()
    data = distiller.data_preprocessor(batch(), False)
    with torch.no_grad():
        logits = distiller(data['inputs'], mode='tensor')
        assert torch.equal(logits, distiller.student(data['inputs']))
        preds = distiller(**data, mode='predict')
    assert len(preds) == 4
    assert torch.allclose(preds[0].pred_score, F.softmax(logits[0], dim=0))


def test_loss_equals_the_loss_module_on_both_models_logits(
        distiller, message_hub):
    distiller.train()
    distiller.warmup_epochs = 10
    message_hub.update_info('epoch', 4)  # 5th epoch: factor 5 / 10
    data = distiller.data_preprocessor(batch(), True)
    losses = distiller(**data, mode='loss')

    inputs = data['inputs']
    target = torch.cat([s.gt_label for s in data['data_samples']])
    with torch.no_grad():
        student_logits = distiller.student(inputs)
        teacher_logits = distiller.teacher(inputs)
    loss_module = distiller.distill_losses['loss_gdkd']
    expected = loss_module(student_logits, teacher_logits, target)
    assert losses['distill.warmup_factor'].item() == pytest.approx(0.5)
    torch.testing.assert_close(losses['distill.head.loss_gdkd'],
                               expected * 0.5)
    torch.testing.assert_close(losses['student.loss'],
                               F.cross_entropy(student_logits, target))
    for part in getattr(loss_module, 'last_components', {}):
        assert f'distill.head.gdkd_{part}' in losses
    # the student's gradient is exactly that of both terms, each of which
    # contributes; the teacher gets none
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    params = [distiller.student.backbone.conv1.weight,
              distiller.student.head.fc.weight]
    task = torch.autograd.grad(
        F.cross_entropy(distiller.student(inputs), target), params)
    distill = torch.autograd.grad(
        0.5 * loss_module(distiller.student(inputs), teacher_logits, target),
        params)
    for param, g_task, g_distill in zip(params, task, distill):
        torch.testing.assert_close(param.grad, g_task + g_distill,
                                   rtol=1e-4, atol=1e-6)
        assert g_distill.abs().max() > 1e-3 * g_task.abs().max()
        assert not torch.allclose(param.grad, g_task, rtol=1e-3, atol=0)
    assert all(p.grad is None for p in distiller.teacher.parameters())


def test_head_weight_scales_the_distillation_term(teacher_ckpt):
    one = build_distiller(teacher_ckpt)
    two = build_distiller(teacher_ckpt, head_weights=dict(head=2.0))
    data = one.data_preprocessor(batch(), True)
    torch.testing.assert_close(
        two(**data, mode='loss')['distill.head.loss_gdkd'],
        2 * one(**data, mode='loss')['distill.head.loss_gdkd'])


def test_warmup_by_epoch(distiller, message_hub):
    distiller.warmup_epochs = 4
    factors = []
    for epoch in range(6):
        message_hub.update_info('epoch', epoch)
        message_hub.update_info('iter', 1000 * epoch)  # must not matter
        factors.append(distiller.warmup_factor())
    assert factors == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_warmup_epochs_from_config(teacher_ckpt, message_hub):
    model = build_distiller(teacher_ckpt, warmup_epochs=20)
    message_hub.update_info('epoch', 0)
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert losses['distill.warmup_factor'].item() == pytest.approx(1 / 20)


def _spy_targets(loss_module):
    seen = []
    forward = loss_module.forward

    def spy(student, teacher, target=None):
        seen.append(target)
        return forward(student, teacher, target)

    loss_module.forward = spy
    return seen


@pytest.mark.parametrize('augment', [
    dict(type='Mixup', alpha=1.0),
    dict(type='CutMix', alpha=1.0),
])
def test_soft_labels_gdkd_gets_no_target(teacher_ckpt, augment):
    model = build_distiller(
        teacher_ckpt, train_cfg=dict(augments=[augment]))
    seen = _spy_targets(model.distill_losses['loss_gdkd'])
    model.train()
    torch.manual_seed(0)
    data = model.data_preprocessor(batch(), True)
    assert 'gt_score' in data['data_samples'][0]
    losses = model(**data, mode='loss')
    assert seen == [None]
    assert torch.isfinite(losses['distill.head.loss_gdkd'])
    # the student's cross-entropy uses the mixed soft labels
    scores = torch.stack([s.gt_score for s in data['data_samples']])
    with torch.no_grad():
        logits = model.student(data['inputs'])
    torch.testing.assert_close(
        losses['student.loss'],
        -(scores * F.log_softmax(logits, dim=1)).sum(1).mean())


def test_batch_augments_from_the_student_train_cfg(teacher_ckpt):
    student = dict(
        classifier('resnet8'),
        train_cfg=dict(augments=[dict(type='Mixup', alpha=1.0)]))
    model = build_distiller(teacher_ckpt, student=student)
    assert model.data_preprocessor.batch_augments is not None
    data = model.data_preprocessor(batch(), True)
    assert 'gt_score' in data['data_samples'][0]


def test_soft_labels_with_dkd_raise_at_build(teacher_ckpt):
    with pytest.raises(ValueError, match=r'loss_dkd \(DKDLoss\)'):
        build_distiller(
            teacher_ckpt,
            losses=dict(loss_dkd=DKD),
            train_cfg=dict(augments=[dict(type='Mixup', alpha=1.0)]))


def test_soft_labels_with_dkd_raise_at_step(teacher_ckpt):
    model = build_distiller(teacher_ckpt, losses=dict(loss_dkd=DKD))
    data = model.data_preprocessor(batch(), True)
    for sample in data['data_samples']:
        sample.set_gt_score(torch.full((NUM_CLASSES, ), 1 / NUM_CLASSES))
    with pytest.raises(ValueError, match='loss_dkd.*need one'):
        model(**data, mode='loss')


def test_requires_target_flag_is_honoured(teacher_ckpt):
    model = build_distiller(teacher_ckpt)
    model.distill_losses['loss_gdkd'].requires_target = True
    data = model.data_preprocessor(batch(), True)
    for sample in data['data_samples']:
        sample.set_gt_score(torch.full((NUM_CLASSES, ), 1 / NUM_CLASSES))
    with pytest.raises(ValueError, match=r'loss_gdkd \(GDKDLoss\)'):
        model(**data, mode='loss')


def test_dkd_gets_the_hard_labels(teacher_ckpt):
    model = build_distiller(teacher_ckpt, losses=dict(loss_dkd=DKD))
    seen = _spy_targets(model.distill_losses['loss_dkd'])
    labels = [3, 1, 4, 1]
    data = model.data_preprocessor(batch(labels=labels), True)
    losses = model(**data, mode='loss')
    assert seen[0].tolist() == labels
    assert torch.isfinite(losses['distill.head.loss_dkd'])


def test_class_count_mismatch(teacher_ckpt):
    with pytest.raises(ValueError, match='class-count mismatch'):
        build_distiller(
            None, teacher=classifier('resnet14', num_classes=12))
    # a checkpoint of a 10-class teacher for a 12-class teacher config
    with pytest.raises(ValueError, match='class-count mismatch'):
        build_distiller(
            teacher_ckpt,
            student=classifier('resnet8', num_classes=12),
            teacher=classifier('resnet14', num_classes=12))


def test_ignore_index_that_is_a_class_is_rejected(teacher_ckpt):
    with pytest.raises(ValueError, match='loss_gdkd: ignore_index=3'):
        build_distiller(
            teacher_ckpt, losses=dict(loss_gdkd=dict(GDKD, ignore_index=3)))
    # MMSeg's 255 is no class of a 10-class classifier: accepted
    build_distiller(
        teacher_ckpt, losses=dict(loss_gdkd=dict(GDKD, ignore_index=255)))


def test_head_that_overrides_loss_is_honoured(teacher_ckpt):
    student = classifier('resnet8')
    student['head']['type'] = '_OwnLossHead'
    with pytest.warns(UserWarning, match='overrides loss'):
        model = build_distiller(teacher_ckpt, student=student)
    data = model.data_preprocessor(batch(), True)
    losses = model(**data, mode='loss')
    assert {'student.loss', 'student.loss_extra',
            'distill.head.loss_gdkd'} <= set(losses)


def test_pretrained_goes_to_the_student(teacher_ckpt):
    model = build_distiller(teacher_ckpt, pretrained='student_init.pth')
    assert model.student.init_cfg == dict(
        type='Pretrained', checkpoint='student_init.pth')


def test_get_model_builds_a_distiller_config(tmp_path, teacher_ckpt):
    """mmpretrain.apis.get_model/init_model on a distillation config."""
    from mmpretrain.apis import get_model
    cfg = Config(
        dict(
            model=dict(
                type='ClsDistiller',
                student=classifier('resnet8'),
                teacher=classifier('resnet14'),
                teacher_ckpt=teacher_ckpt,
                distill_losses=dict(loss_gdkd=GDKD)),
            data_preprocessor=dict(num_classes=NUM_CLASSES)))
    student_ckpt = str(tmp_path / 'student.pth')
    torch.manual_seed(7)
    plain = build_model(classifier('resnet8'))
    torch.save({'state_dict': plain.state_dict(), 'meta': {}}, student_ckpt)
    model = get_model(cfg, pretrained=student_ckpt)
    inputs = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(inputs), plain.eval()(inputs))

