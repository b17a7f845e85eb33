# Copyright (c) mmgdkd contributors. All rights reserved.
"""Architecture matrix: every MMSeg 1.2.2 family, as teacher and student.

One distillation step per pair of the ring in ``seg_families.RING`` (each
family teaches the next), at 64x128 on toy-sized models: every loss and
gradient finite, the distillation term reaching the student's prediction
head, the teacher's logits resized to the student's. The README table in
configs/README.md lists the outcome per family.
"""
import warnings

import pytest
import torch
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from mmgdkd.models.distillers.seg_taps import decode_stages

from seg_families import (FAMILIES, INPUT_SIZE, NEEDS_COMPILED_OPS, REFUSED,
                          RING, batch, family_cfg)

PAIRS = [(RING[i], RING[(i + 1) % len(RING)]) for i in range(len(RING))]


def build(student, teacher, size):
    s_cfg, t_cfg = family_cfg(student), family_cfg(teacher)
    for cfg in (s_cfg, t_cfg):
        cfg['data_preprocessor']['size'] = size
    torch.manual_seed(0)
    with warnings.catch_warnings(), \
            DefaultScope.overwrite_default_scope('mmseg'):
        warnings.simplefilter('ignore')
        return MODELS.build(dict(
            type='SegDistiller', student=s_cfg, teacher=t_cfg,
            allow_untrained_teacher=True,
            distill_losses=dict(loss_gdkd=dict(type='GDKDLoss', k=3))))


def test_ring_covers_every_working_family_once_each_way():
    assert sorted(RING) == sorted(
        set(FAMILIES) - set(REFUSED) - set(NEEDS_COMPILED_OPS))
    assert len(set(RING)) == len(RING)


@pytest.mark.parametrize('teacher,student', PAIRS,
                         ids=[f'{t}-{s}' for t, s in PAIRS])
def test_one_distillation_step(teacher, student):
    size = INPUT_SIZE.get(teacher, INPUT_SIZE.get(student, (64, 128)))
    model = build(student, teacher, size)
    model.train()
    # one large image where a family needs a large input; else two small
    n = 1 if size != (64, 128) else 2
    data = model.data_preprocessor(batch(size, n), True)
    losses = model(**data, mode='loss')
    assert 'distill.decode.loss_gdkd' in losses
    assert any(k.startswith('student.') and 'loss' in k for k in losses)
    for key, value in losses.items():
        assert torch.isfinite(value).all(), key
    distill = losses['distill.decode.loss_gdkd']
    assert distill.item() > 0

    # teacher logits come at the student's size, whatever the strides
    student_logits, _ = model.student_forward_train(
        data['inputs'], data['data_samples'])
    with torch.no_grad():
        teacher_logits = model.match_teacher(
            model.teacher_forward(data['inputs'], ['decode']),
            student_logits)
    assert teacher_logits['decode'].shape == student_logits['decode'].shape

    model.zero_grad()
    distill.backward()
    grads = [p.grad for p in model.student.parameters()
             if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # the distilled prediction is the final decode stage's: it learns
    final = decode_stages(model.student)[-1]
    assert sum(p.grad.abs().sum() for p in final.parameters()
               if p.grad is not None) > 0, type(final).__name__
    assert all(p.grad is None for p in model.teacher.parameters())


#: What the refusal says about why, per refused family.
WHY = {
    'maskformer': 'mask-classification head',
    'mask2former': 'mask-classification head',
    'san': 'CLIP text embeddings',
    'vpd': 'it predicts depth, not class logits',
}


@pytest.mark.parametrize('family', sorted(REFUSED))
@pytest.mark.parametrize('role', ['student', 'teacher'])
def test_models_without_pixel_logits_are_refused(family, role):
    other = 'pspnet'
    kwargs = dict(student=family, teacher=other) if role == 'student' \
        else dict(student=other, teacher=family)
    with pytest.raises(ValueError, match=f'{role} .*{REFUSED[family]}.* '
                       f'cannot be distilled.*{WHY[family]}'):
        build(kwargs['student'], kwargs['teacher'], (64, 128))


@pytest.mark.parametrize('family', sorted(NEEDS_COMPILED_OPS))
def test_families_needing_compiled_ops_say_so(family):
    try:
        import mmcv._ext as ext
        if not type(ext).__name__ == '_MissingMMCVOps':
            pytest.skip('full mmcv installed: the op exists')
    except ImportError:
        pass
    model = build(family, 'pspnet', (64, 128))
    model.train()
    data = model.data_preprocessor(batch((64, 128)), True)
    with pytest.raises(RuntimeError, match=NEEDS_COMPILED_OPS[family]):
        model(**data, mode='loss')
