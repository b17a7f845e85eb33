# Copyright (c) mmgdkd contributors. All rights reserved.
"""SegDistiller: wiring, frozen teacher, checkpoints and errors."""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from helpers import (PSPNET_R18, build_segmentor, tiny_segmentor,
                     untrained_teacher)
from mmgdkd.models.distillers.utils import load_model_cfg

H, W = 64, 128


def segmentor_cfg() -> dict:
    return load_model_cfg(dict(cfg_path=PSPNET_R18,
                               **tiny_segmentor())).to_dict()


@pytest.fixture(scope='module')
def teacher_ckpt(tmp_path_factory) -> str:
    torch.manual_seed(1)
    teacher = build_segmentor()
    path = str(tmp_path_factory.mktemp('teacher') / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return path


def build_distiller(teacher_ckpt, **kwargs):
    cfg = dict(
        type='SegDistiller',
        student=segmentor_cfg(),
        teacher=segmentor_cfg(),
        teacher_ckpt=teacher_ckpt,
        distill_losses=dict(
            loss_gdkd=dict(type='GDKDLoss', k=3, w0=1.0, w1=1.0, w2=2.0)))
    if teacher_ckpt is None:
        # tests of other build-time errors: no weights on purpose
        untrained_teacher(cfg)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def batch(n=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        sample = SegDataSample()
        label = torch.randint(0, 19, (1, H, W), generator=gen)
        label[:, :4] = 255  # some ignored pixels
        sample.gt_sem_seg = PixelData(data=label)
        sample.set_metainfo(dict(img_shape=(H, W), ori_shape=(H, W),
                                 pad_shape=(H, W)))
        samples.append(sample)
    inputs = [torch.randint(0, 255, (3, H, W), generator=gen,
                            dtype=torch.uint8) for _ in range(n)]
    return dict(inputs=inputs, data_samples=samples)


@pytest.fixture
def distiller(teacher_ckpt):
    return build_distiller(teacher_ckpt)


def test_teacher_frozen_in_eval_and_outside_the_trainable_model(distiller):
    distiller.train()
    assert distiller.student.training
    assert not distiller.teacher.training
    assert all(not m.training for m in distiller.teacher.modules())
    assert all(not p.requires_grad for p in distiller.teacher.parameters())
    teacher_params = {id(p) for p in distiller.teacher.parameters()}
    assert not teacher_params & {id(p) for p in distiller.parameters()}


def test_student_starts_like_the_plain_model_of_the_same_seed(teacher_ckpt):
    torch.manual_seed(7)
    plain = build_segmentor()
    plain.init_weights()
    after_plain = torch.rand(1)
    torch.manual_seed(7)
    cfg = dict(type='SegDistiller', student=segmentor_cfg(),
               teacher=segmentor_cfg(), teacher_ckpt=teacher_ckpt)
    distiller = MODELS.build(cfg)
    distiller.init_weights()
    assert torch.equal(torch.rand(1), after_plain)  # same random stream
    for key, value in plain.state_dict().items():
        assert torch.equal(value, distiller.state_dict()[key]), key


def test_teacher_weights_come_from_checkpoint(distiller, teacher_ckpt):
    saved = torch.load(teacher_ckpt, weights_only=True)['state_dict']
    for key, value in distiller.teacher.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_state_dict_is_a_plain_student_checkpoint(distiller):
    plain = build_segmentor()
    assert list(distiller.state_dict()) == list(plain.state_dict())
    # and a plain checkpoint loads back into the distiller
    plain_state = plain.state_dict()
    distiller.load_state_dict(plain_state, strict=True)
    for key, value in distiller.student.state_dict().items():
        assert torch.equal(value, plain_state[key])


def test_checkpoint_teacher_option_round_trips(teacher_ckpt):
    distiller = build_distiller(teacher_ckpt, checkpoint_teacher=True)
    state = distiller.state_dict()
    assert any(k.startswith('teacher.') for k in state)
    other = build_distiller(None, checkpoint_teacher=True)
    other.load_state_dict(state, strict=True)
    for key, value in distiller.teacher.state_dict().items():
        assert torch.equal(value, other.teacher.state_dict()[key])


def test_loss_dict_components_and_values(distiller):
    distiller.train()
    data = distiller.data_preprocessor(batch(), True)
    losses = distiller(**data, mode='loss')
    expected = {
        'student.decode.loss_ce', 'student.decode.acc_seg',
        'student.aux.loss_ce', 'student.aux.acc_seg',
        'distill.decode.loss_gdkd', 'distill.aux.loss_gdkd',
        'distill.decode.gdkd_high', 'distill.decode.gdkd_low_top',
        'distill.decode.gdkd_low_other', 'distill.aux.gdkd_high',
        'distill.warmup_factor'
    }
    assert expected <= set(losses)
    components = [k for k in losses if k.startswith('distill.') and
                  'loss' not in k]
    assert all(not losses[k].requires_grad for k in components)

    # the distillation term is the loss module on the two models' logits
    # (eval mode: no dropout, fixed BN statistics, so both runs agree)
    distiller.eval()
    inputs, samples = data['inputs'], data['data_samples']
    with torch.no_grad():
        s_feats = distiller.student.extract_feat(inputs)
        t_feats = distiller.teacher.extract_feat(inputs)
        target = torch.stack([s.gt_sem_seg.data for s in samples]).squeeze(1)
        loss = distiller.distill_losses['loss_gdkd']
        decode = loss(distiller.student.decode_head(s_feats),
                      distiller.teacher.decode_head(t_feats), target)
        aux = loss(distiller.student.auxiliary_head(s_feats),
                   distiller.teacher.auxiliary_head(t_feats), target)
    losses = distiller(**data, mode='loss')
    torch.testing.assert_close(losses['distill.decode.loss_gdkd'], decode)
    torch.testing.assert_close(losses['distill.aux.loss_gdkd'], aux * 0.4)

    # gradients reach the student only
    distiller.train()
    losses = distiller(**data, mode='loss')
    losses['distill.decode.loss_gdkd'].backward()
    assert distiller.student.decode_head.conv_seg.weight.grad is not None
    assert all(p.grad is None for p in distiller.teacher.parameters())


@pytest.mark.parametrize('warmup_iters,iters,factors',
                         [(4, [0, 1, 3, 10], [0.25, 0.5, 1.0, 1.0]),
                          (0, [0, 5], [1.0, 1.0])])
def test_warmup_by_iteration(teacher_ckpt, warmup_iters, iters, factors):
    distiller = build_distiller(teacher_ckpt, warmup_iters=warmup_iters)
    distiller.eval()
    data = distiller.data_preprocessor(batch(), True)
    hub = MessageHub.get_current_instance()
    full = None
    for it, factor in zip(iters, factors):
        hub.update_info('iter', it)
        assert distiller.warmup_factor() == pytest.approx(factor)
        losses = distiller(**data, mode='loss')
        assert losses['distill.warmup_factor'].item() == pytest.approx(factor)
        if factor == 1.0:
            full = losses['distill.decode.loss_gdkd']
    assert full is not None
    hub.update_info('iter', iters[0])
    first = distiller(**data, mode='loss')['distill.decode.loss_gdkd']
    torch.testing.assert_close(first, full * factors[0])
    hub.update_info('iter', 0)


def test_warmup_by_epoch(teacher_ckpt):
    distiller = build_distiller(teacher_ckpt, warmup_epochs=20)
    hub = MessageHub.get_current_instance()
    hub.update_info('epoch', 0)
    assert distiller.warmup_factor() == pytest.approx(1 / 20)
    hub.update_info('epoch', 19)
    assert distiller.warmup_factor() == 1.0
    hub.update_info('epoch', 0)


def test_teachers_run_first_and_match_the_student_at_any_size(teacher_ckpt):
    """The teacher forward precedes the student's (its temporaries are gone
    before the student's graph is built); a step at a new input size gets
    teacher logits at that step's student size; the distillation term is
    the one of the student-first order."""
    model = build_distiller(teacher_ckpt)
    calls = []
    for name in ('teacher_forward', 'student_forward_train'):
        method = getattr(model, name)

        def spy(*args, _method=method, _name=name, **kwargs):
            calls.append(_name)
            return _method(*args, **kwargs)

        setattr(model, name, spy)
    for size in ((H, W), (H // 2, W), (H, W)):
        # the preprocessor pads to its fixed size: crop after it
        data = model.data_preprocessor(batch(), True)
        data['inputs'] = data['inputs'][..., :size[0], :size[1]]
        for sample in data['data_samples']:
            sample.gt_sem_seg = PixelData(
                data=sample.gt_sem_seg.data[..., :size[0], :size[1]])
            sample.set_metainfo(dict(img_shape=size, pad_shape=size))
        del calls[:]
        torch.manual_seed(3)  # the student's dropout
        losses = model.loss(data['inputs'], data['data_samples'])
        assert calls == ['teacher_forward', 'student_forward_train']
        torch.manual_seed(3)
        student, _ = model.student_forward_train(data['inputs'],
                                                 data['data_samples'])
        with torch.no_grad():
            teacher = model.match_teacher(
                model.teacher_forward(data['inputs'], ['decode']), student)
        assert teacher['decode'].shape == student['decode'].shape
        assert student['decode'].shape[-2:] == (size[0] // 8, size[1] // 8)
        expected = model.distill_losses['loss_gdkd'](
            student['decode'], teacher['decode'],
            model.distill_target(data['data_samples']))
        torch.testing.assert_close(losses['distill.decode.loss_gdkd'],
                                   expected * model.loss_heads[
                                       'loss_gdkd']['decode'])


def test_predict_and_tensor_are_the_student(distiller):
    distiller.eval()
    data = distiller.data_preprocessor(batch(), False)
    with torch.no_grad():
        ours = distiller(**data, mode='predict')
        plain = distiller.student(**data, mode='predict')
        torch.testing.assert_close(
            distiller(data['inputs'], mode='tensor'),
            distiller.student(data['inputs'], mode='tensor'))
    for a, b in zip(ours, plain):
        assert torch.equal(a.pred_sem_seg.data, b.pred_sem_seg.data)


def test_default_head_weights(teacher_ckpt):
    distiller = build_distiller(teacher_ckpt, head_weights=None)
    assert distiller.loss_heads['loss_gdkd'] == {'decode': 1.0, 'aux': 0.4}


def test_label_resolution_option(teacher_ckpt):
    distiller = build_distiller(teacher_ckpt, logits_at='label')
    distiller.eval()
    data = distiller.data_preprocessor(batch(), True)
    logits, _ = distiller.student_forward_train(data['inputs'],
                                                data['data_samples'])
    assert logits['decode'].shape[-2:] == (H, W)


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------
def test_missing_teacher_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build_distiller(str(tmp_path / 'missing.pth'))


def test_teacher_checkpoint_of_another_architecture(teacher_ckpt, tmp_path):
    state = torch.load(teacher_ckpt, weights_only=True)['state_dict']
    state.pop('backbone.stem.0.weight')
    state['neck.extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'other_arch.pth')
    torch.save({'state_dict': state}, path)
    with pytest.raises(ValueError) as info:
        build_distiller(path)
    message = str(info.value)
    assert 'other_arch.pth' in message
    assert 'backbone.stem.0.weight' in message
    assert 'neck.extra.weight' in message


def test_teacher_checkpoint_with_other_class_count(teacher_ckpt, tmp_path):
    state = torch.load(teacher_ckpt, weights_only=True)['state_dict']
    state['decode_head.conv_seg.weight'] = \
        state['decode_head.conv_seg.weight'][:10]
    path = str(tmp_path / 'ten_classes.pth')
    torch.save({'state_dict': state}, path)
    with pytest.raises(ValueError, match=r'class-count mismatch.*10 classes'
                       r'.*has 19'):
        build_distiller(path)


def test_teacher_student_class_count_mismatch(teacher_ckpt):
    teacher = segmentor_cfg()
    teacher['decode_head']['num_classes'] = 10
    teacher['auxiliary_head']['num_classes'] = 10
    with pytest.raises(ValueError,
                       match='teacher predicts 10 classes, the student 19'):
        build_distiller(None, teacher=teacher)


@pytest.mark.parametrize('kwargs,match', [
    (dict(distill_losses=dict(gdkd=dict(type='GDKDLoss'))), "'gdkd'"),
    (dict(head_weights=dict(aux_3=1.0)), "'aux_3'"),
    (dict(head_weights=dict(decode=-1.0)), '-1.0'),
    (dict(teacher_autocast='float8'), 'float8'),
    (dict(warmup_iters=5, warmup_epochs=5), 'not both'),
    (dict(warmup_iters=-1), '-1'),
    (dict(logits_at='pixels'), 'pixels'),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_distiller(None, **kwargs)


def test_distiller_preprocessor_must_match_the_student():
    with pytest.raises(ValueError, match=r'size: distiller \(512, 1024\) vs '
                       r'student \(64, 128\)'):
        build_distiller(None, data_preprocessor=dict(
            type='SegDataPreProcessor', size=(512, 1024)))


def test_mismatched_normalisation_is_rejected():
    teacher = segmentor_cfg()
    teacher['data_preprocessor']['mean'] = [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match='mean'):
        build_distiller(None, teacher=teacher)


def test_deepcopy_keeps_teacher(distiller):
    clone = copy.deepcopy(distiller)
    assert clone.teacher is not distiller.teacher
    assert not clone.teacher.training
