# Copyright (c) mmgdkd contributors. All rights reserved.
"""SegDistiller on cascades, heterogeneous pairs and explicit tap maps."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from seg_families import batch, family_cfg

SIZE = (64, 128)


def build(student, teacher, **kwargs):
    cfg = dict(type='SegDistiller', student=family_cfg(student),
               teacher=family_cfg(teacher),
               allow_untrained_teacher=True,
               distill_losses=dict(loss_kd=dict(type='KDLoss')))
    cfg.update(kwargs)
    torch.manual_seed(0)
    with warnings.catch_warnings(), \
            DefaultScope.overwrite_default_scope('mmseg'):
        warnings.simplefilter('ignore')
        return MODELS.build(cfg)


def host_model(family):
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(family_cfg(family))


@pytest.mark.parametrize('family,taps', [
    ('pspnet', ['decode', 'aux']),
    ('ocrnet', ['decode', 'decode_0', 'decode_1']),
    ('point_rend', ['decode', 'decode_0', 'decode_1']),
    ('bisenetv1', ['decode', 'aux_0', 'aux_1']),
])
def test_tap_names(family, taps):
    from mmgdkd.models.distillers.seg_taps import tap_names
    assert tap_names(host_model(family)) == taps


@pytest.mark.parametrize('family', ['ocrnet', 'point_rend', 'pspnet'])
def test_student_task_losses_are_the_hosts_own(family):
    """Cascade stages, point sampling and aux heads: the student's losses are
    exactly what MMSeg's own ``loss`` gives (same weights, same points)."""
    model = build(family, 'pspnet')
    model.eval()  # no dropout: both runs see the same network
    data = model.data_preprocessor(batch(SIZE), True)
    torch.manual_seed(3)
    _, ours = model.student_forward_train(data['inputs'],
                                          data['data_samples'])
    torch.manual_seed(3)
    host = model.student.loss(data['inputs'], data['data_samples'])
    assert set(ours) == set(host)
    for key in host:
        torch.testing.assert_close(ours[key], host[key], msg=key)


def test_cascade_decode_tap_is_the_final_stage():
    model = build('ocrnet', 'pspnet')
    model.eval()
    data = model.data_preprocessor(batch(SIZE), True)
    logits, _ = model.student_forward_train(data['inputs'],
                                            data['data_samples'])
    with torch.no_grad():
        final = model.student._forward(data['inputs'])
    torch.testing.assert_close(logits['decode'], final)
    torch.testing.assert_close(logits['decode_1'], final)
    assert not torch.equal(logits['decode_0'], final)


def _pointrend(role):
    """PointRend with few subdivision points: the refinement replaces some
    points of the upsampled coarse map, not all of them."""
    cfg = family_cfg('point_rend')
    cfg['test_cfg'].update(subdivision_num_points=100)
    other = family_cfg('pspnet')
    kwargs = dict(student=cfg, teacher=other) if role == 'student' else \
        dict(student=other, teacher=cfg)
    torch.manual_seed(0)
    with warnings.catch_warnings(), \
            DefaultScope.overwrite_default_scope('mmseg'):
        warnings.simplefilter('ignore')
        return MODELS.build(dict(
            type='SegDistiller', allow_untrained_teacher=True,
            distill_losses=dict(loss_kd=dict(type='KDLoss')), **kwargs))


def test_pointrend_decode_tap_is_its_inference_output():
    model = _pointrend('student')
    model.eval()
    data = model.data_preprocessor(batch(SIZE), True)
    logits, _ = model.student_forward_train(data['inputs'],
                                            data['data_samples'])
    metas = [s.metainfo for s in data['data_samples']]
    with torch.no_grad():
        final = model.student.encode_decode(data['inputs'], metas)
    assert logits['decode'].shape == (2, 19) + SIZE
    torch.testing.assert_close(logits['decode'], final)
    torch.testing.assert_close(logits['decode_1'], final)
    # the point head changed some pixels of the upsampled coarse map, and
    # the distillation term reaches it through them
    coarse = F.interpolate(logits['decode_0'], scale_factor=4,
                           mode='bilinear', align_corners=False)
    changed = (coarse - final).abs().amax(1) > 1e-6
    assert 0 < changed.sum() < changed.numel()
    losses = model(**data, mode='loss')
    model.zero_grad()
    losses['distill.decode.loss_kd'].backward()
    point_head = model.student.decode_head[1]
    assert point_head.fc_seg.weight.grad.abs().sum() > 0


def test_pointrend_teacher_gives_its_inference_output():
    model = _pointrend('teacher')
    data = model.data_preprocessor(batch(SIZE), True)
    student_logits, _ = model.student_forward_train(data['inputs'],
                                                    data['data_samples'])
    metas = [s.metainfo for s in data['data_samples']]
    with torch.no_grad():
        teacher_logits = model.match_teacher(
            model.teacher_forward(data['inputs'], ['decode']),
            student_logits)
        final = model.teacher.encode_decode(data['inputs'], metas)
    size = student_logits['decode'].shape[-2:]
    assert final.shape[-2:] == SIZE != size
    torch.testing.assert_close(
        teacher_logits['decode'],
        F.interpolate(final, size=size, mode='bilinear',
                      align_corners=False))


@pytest.mark.parametrize('student,teacher', [('pspnet', 'segformer'),
                                             ('segformer', 'deeplabv3')])
def test_teacher_logits_resized_bilinearly_to_the_students(student, teacher):
    model = build(student, teacher, head_weights=dict(decode=1.0))
    model.eval()
    data = model.data_preprocessor(batch(SIZE), True)
    losses = model(**data, mode='loss')
    with torch.no_grad():
        s_logits = model.student._forward(data['inputs'])
        t_logits = model.teacher._forward(data['inputs'])
    assert s_logits.shape[-2:] != t_logits.shape[-2:]  # strides differ
    resized = F.interpolate(t_logits, size=s_logits.shape[-2:],
                            mode='bilinear', align_corners=False)
    target = torch.stack(
        [s.gt_sem_seg.data for s in data['data_samples']]).squeeze(1)
    expected = model.distill_losses['loss_kd'](s_logits, resized, target)
    torch.testing.assert_close(losses['distill.decode.loss_kd'], expected)


def test_explicit_tap_map_teacher_decode_to_student_aux():
    # student PSPNet has 'aux'; teacher SegFormer has only 'decode'
    model = build('pspnet', 'segformer', teacher_taps=dict(aux='decode'))
    assert model.loss_heads['loss_kd'] == {'decode': 1.0, 'aux': 0.4}
    model.eval()
    data = model.data_preprocessor(batch(SIZE), True)
    losses = model(**data, mode='loss')
    with torch.no_grad():
        feats = model.student.extract_feat(data['inputs'])
        s_aux = model.student.auxiliary_head(feats)
        t_logits = model.teacher._forward(data['inputs'])
    target = torch.stack(
        [s.gt_sem_seg.data for s in data['data_samples']]).squeeze(1)
    resized = F.interpolate(t_logits, size=s_aux.shape[-2:],
                            mode='bilinear', align_corners=False)
    expected = model.distill_losses['loss_kd'](s_aux, resized, target)
    torch.testing.assert_close(losses['distill.aux.loss_kd'], expected * 0.4)


def test_cascade_stage_taps_on_both_sides():
    model = build('ocrnet', 'ocrnet',
                  head_weights=dict(decode=1.0, decode_0=0.5))
    model.eval()
    data = model.data_preprocessor(batch(SIZE), True)
    losses = model(**data, mode='loss')
    assert {'distill.decode.loss_kd', 'distill.decode_0.loss_kd'} <= \
        set(losses)
    # each tap distils the same-named stage of the teacher, at its weight
    target = torch.stack(
        [s.gt_sem_seg.data for s in data['data_samples']]).squeeze(1)
    with torch.no_grad():
        s_feats = model.student.extract_feat(data['inputs'])
        t_feats = model.teacher.extract_feat(data['inputs'])
        s0 = model.student.decode_head[0](s_feats)
        t0 = model.teacher.decode_head[0](t_feats)
        s1 = model.student.decode_head[1](s_feats, s0)
        t1 = model.teacher.decode_head[1](t_feats, t0)
    kd = model.distill_losses['loss_kd']
    torch.testing.assert_close(losses['distill.decode_0.loss_kd'],
                               kd(s0, t0, target) * 0.5)
    torch.testing.assert_close(losses['distill.decode.loss_kd'],
                               kd(s1, t1, target))


def test_aux_taps_pair_only_where_both_have_them():
    # BiSeNetV1 has aux_0/aux_1, PSPNet 'aux': nothing pairs by default
    model = build('bisenetv1', 'pspnet')
    assert model.loss_heads['loss_kd'] == {'decode': 1.0}
    model = build('pspnet', 'deeplabv3')
    assert model.loss_heads['loss_kd'] == {'decode': 1.0, 'aux': 0.4}


@pytest.mark.parametrize('kwargs,match', [
    (dict(teacher_taps=dict(aux_7='decode')),
     r"'aux_7' is not a tap of the student EncoderDecoder \(its taps: "
     r"\['aux', 'decode'\]\)"),
    (dict(teacher_taps=dict(aux='decode_3')),
     r"'decode_3' \(for student tap 'aux'\) is not a tap of the teacher"),
    (dict(head_weights=dict(decode=1.0, decode_0=1.0)),
     r"cannot distil head 'decode_0': 'decode_0' is not a tap of the "
     r"student"),
    (dict(teacher_taps=['aux']), 'teacher_taps must be a dict'),
])
def test_bad_tap_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build('pspnet', 'ocrnet', **kwargs)


def test_unpaired_teacher_tap_names_the_fix():
    with pytest.raises(ValueError, match=r"cannot distil head 'aux': 'aux' "
                       r"is not a tap of the teacher CascadeEncoderDecoder.*"
                       r"teacher_taps=\{'aux': <teacher tap>\}"):
        build('pspnet', 'ocrnet', head_weights=dict(decode=1.0, aux=0.4))


def test_channel_mismatch_in_explicit_map():
    # STDC's aux_2 is its 2-class detail head
    with pytest.raises(ValueError, match=r"student tap 'aux_2' has 2 logit "
                       r"channels, teacher tap 'decode' has 19"):
        build('stdc', 'pspnet', teacher_taps=dict(aux_2='decode'))


def test_prediction_map_of_multi_output_heads():
    from mmgdkd.models.distillers.seg_taps import prediction_map
    maps = (torch.zeros(1, 19, 2, 2), torch.ones(1, 19, 2, 2),
            torch.full((1, 1, 2, 2), 2.))
    pid = host_model('pidnet').decode_head  # (P, I, D): inference uses I
    assert prediction_map(pid, maps) is maps[1]
    fcn = host_model('fcn').decode_head
    assert prediction_map(fcn, maps[0]) is maps[0]
    with pytest.raises(ValueError, match='FCNHead.forward returned a tuple '
                       'of several maps'):
        prediction_map(fcn, maps)


def test_resize_is_bilinear_and_a_no_op_at_equal_size():
    from mmgdkd.models.distillers.seg_taps import resize_to
    logits = torch.randn(2, 19, 8, 16)
    assert resize_to(logits, (8, 16)) is logits
    torch.testing.assert_close(
        resize_to(logits, (16, 32)),
        F.interpolate(logits, size=(16, 32), mode='bilinear',
                      align_corners=False))
