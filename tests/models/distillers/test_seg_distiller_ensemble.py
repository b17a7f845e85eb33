# Copyright (c) mmgdkd contributors. All rights reserved.
"""SegDistiller with an ensemble of teachers: identities, strides, errors."""
import pytest
import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from helpers import build_segmentor
from test_seg_distiller import batch, segmentor_cfg

GDKD = dict(type='GDKDLoss', k=3, w0=1.0, w1=1.0, w2=2.0, temperature=2.0)
KD = dict(type='KDLoss', temperature=4.0)
DKD = dict(type='DKDLoss', alpha=1.0, beta=2.0, temperature=1.0)
CWD = dict(type='CWDLoss', temperature=1.0, loss_weight=3.0)


def stride16_cfg() -> dict:
    """The same PSPNet-R18 at output stride 16 (same parameter shapes)."""
    cfg = segmentor_cfg()
    cfg['backbone'].update(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2))
    return cfg


def save_teacher(path, seed) -> str:
    torch.manual_seed(seed)
    torch.save({'state_dict': build_segmentor().state_dict(), 'meta': {}},
               path)
    return str(path)


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp('ensemble_teachers')
    return [save_teacher(root / f't{i}.pth', seed) for i, seed in
            enumerate((1, 2))]


def build(teacher, teacher_ckpt, losses=None, **kwargs):
    cfg = dict(
        type='SegDistiller',
        student=segmentor_cfg(),
        teacher=teacher,
        teacher_ckpt=teacher_ckpt,
        distill_losses=losses or dict(loss_gdkd=GDKD, loss_kd=KD,
                                      loss_dkd=DKD))
    ckpts = teacher_ckpt if isinstance(teacher_ckpt, list) else [teacher_ckpt]
    if None in ckpts:
        cfg['allow_untrained_teacher'] = True  # random teachers on purpose
    cfg.update(kwargs)
    torch.manual_seed(0)  # same student init in every build
    model = MODELS.build(cfg)
    model.eval()  # no dropout: runs of different distillers compare
    return model


def distill_terms(losses) -> dict:
    return {k: v for k, v in losses.items() if k.startswith('distill.')}


@pytest.fixture(scope='module')
def data():
    model = build(segmentor_cfg(), None)
    return model.data_preprocessor(batch(), True)


@pytest.mark.parametrize('mode', ['prob', 'loss'])
def test_two_copies_of_one_teacher_are_that_teacher(ckpts, data, mode):
    single = build(segmentor_cfg(), ckpts[0])(**data, mode='loss')
    double = build([segmentor_cfg(), segmentor_cfg()], [ckpts[0]] * 2,
                   teacher_ensemble=mode)(**data, mode='loss')
    per_teacher = {k for k in double if '.teacher' in k}
    assert per_teacher == ({
        f'distill.{tap}.teacher{i}.{name}'
        for tap in ('decode', 'aux') for i in (1, 2)
        for name in ('gdkd', 'kd', 'dkd')
    } if mode == 'loss' else set())
    assert set(double) - per_teacher == set(single)
    for key, value in single.items():
        if mode == 'loss' or not key.startswith('distill.'):
            # weights 1/2 + 1/2 of the same value: bit for bit
            assert torch.equal(double[key], value), key
        else:
            # the loss sees T*log_softmax(z/T) instead of z: the same
            # softmax up to fp32 rounding, which the KL of near-equal
            # distributions amplifies (float64: test_teacher_ensemble.py)
            torch.testing.assert_close(double[key], value, rtol=1e-4,
                                       atol=1e-6, msg=key)


def test_loss_mode_is_the_weighted_sum_of_single_teacher_distillers(
        ckpts, data):
    # teacher2 also differs in output stride (16 vs 8)
    specs = [segmentor_cfg(), stride16_cfg()]
    ensemble = build(specs, ckpts, teacher_ensemble='loss',
                     teacher_weights=[1.0, 3.0])(**data, mode='loss')
    singles = [build(spec, ckpt)(**data, mode='loss')
               for spec, ckpt in zip(specs, ckpts)]
    for key, value in ensemble.items():
        if '.teacher' in key:
            continue
        expected = 0.25 * singles[0][key] + 0.75 * singles[1][key] \
            if key.startswith('distill.') and key != \
            'distill.warmup_factor' else singles[0][key]
        torch.testing.assert_close(value, expected, msg=key)
    # each teacher's term is its single-teacher loss before the head weight
    for i, single in enumerate(singles, 1):
        for name in ('gdkd', 'kd', 'dkd'):
            torch.testing.assert_close(
                ensemble[f'distill.decode.teacher{i}.{name}'],
                single[f'distill.decode.loss_{name}'])
            torch.testing.assert_close(
                ensemble[f'distill.aux.teacher{i}.{name}'] * 0.4,
                single[f'distill.aux.loss_{name}'])
            assert 'loss' not in f'distill.aux.teacher{i}.{name}'


def _spy_teacher_inputs(loss_module):
    seen = []
    forward = loss_module.forward

    def spy(student, teacher, target=None):
        seen.append(teacher)
        return forward(student, teacher, target)

    loss_module.forward = spy
    return seen


def test_prob_mode_feeds_each_loss_the_mixture_at_its_temperature(
        ckpts, data):
    specs = [segmentor_cfg(), stride16_cfg()]
    model = build(specs, ckpts, teacher_weights=[2.0, 1.0],
                  losses=dict(loss_gdkd=GDKD, loss_kd=KD))
    seen = {name: _spy_teacher_inputs(loss)
            for name, loss in model.distill_losses.items()}
    model(**data, mode='loss')
    inputs = data['inputs']
    with torch.no_grad():
        student = model.student.decode_head(
            model.student.extract_feat(inputs))
        teachers = [t.decode_head(t.extract_feat(inputs))
                    for t in model.teachers]
    assert teachers[1].shape[-2:] == (4, 8)  # stride 16 at 64x128
    assert student.shape[-2:] == teachers[0].shape[-2:] == (8, 16)
    teachers[1] = F.interpolate(teachers[1], size=(8, 16), mode='bilinear',
                                align_corners=False)
    mixtures = {}
    for name, temperature in (('loss_gdkd', 2.0), ('loss_kd', 4.0)):
        decode = seen[name][0]  # taps run in loss_heads order: decode first
        assert decode.shape == student.shape
        mixtures[name] = \
            (2 / 3) * F.softmax(teachers[0].double() / temperature, 1) + \
            (1 / 3) * F.softmax(teachers[1].double() / temperature, 1)
        torch.testing.assert_close(
            F.softmax(decode.double() / temperature, 1), mixtures[name],
            rtol=0, atol=1e-6)
    # GDKD partitions by the ensemble's top-3 (pixels with a clear 3rd/4th
    # gap; the untrained teachers are nearly uniform)
    mixture = mixtures['loss_gdkd']
    values = mixture.topk(4, dim=1).values
    clear = (values[:, 2] - values[:, 3]) > 1e-5
    assert clear.float().mean() > 0.5
    top3 = seen['loss_gdkd'][0].topk(3, dim=1).indices.sort(1).values
    expected = mixture.topk(3, dim=1).indices.sort(1).values
    assert torch.equal(top3.permute(0, 2, 3, 1)[clear],
                       expected.permute(0, 2, 3, 1)[clear])


def test_mixed_strides_and_architectures_train(ckpts, data):
    deeplab = segmentor_cfg()
    deeplab['decode_head'] = dict(
        type='ASPPHead', in_channels=512, in_index=3, channels=32,
        dilations=(1, 12, 24, 36), dropout_ratio=0.1, num_classes=19,
        norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False,
                         loss_weight=1.0))
    for mode in ('prob', 'loss'):
        model = build([stride16_cfg(), deeplab], None, teacher_ensemble=mode)
        model.train()
        losses = model(**data, mode='loss')
        total = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(total)
        total.backward()
        grad = model.student.decode_head.conv_seg.weight.grad
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
        for teacher in model.teachers:
            assert all(p.grad is None for p in teacher.parameters())


def test_cwd_in_loss_mode_and_teacher_autocast(ckpts, data):
    model = build([segmentor_cfg(), stride16_cfg()], ckpts,
                  teacher_ensemble='loss', teacher_autocast='bfloat16',
                  losses=dict(loss_cwd=CWD))
    dtypes = []
    forward = model.teacher_forward

    def spy(inputs, taps, teacher=None):
        out = forward(inputs, taps, teacher)
        dtypes.append(out['decode'].dtype)
        return out

    model.teacher_forward = spy
    losses = model(**data, mode='loss')
    assert dtypes == [torch.bfloat16, torch.bfloat16]  # each teacher
    assert torch.isfinite(losses['distill.decode.loss_cwd'])
    assert {'distill.decode.teacher1.cwd', 'distill.decode.teacher2.cwd'} \
        <= set(losses)


def test_teachers_frozen_in_eval_outside_the_trainable_model(ckpts):
    model = build([segmentor_cfg(), stride16_cfg()], ckpts)
    model.train()
    assert model.student.training
    own = {id(p) for p in model.parameters()}
    for teacher, ckpt in zip(model.teachers, ckpts):
        assert all(not m.training for m in teacher.modules())
        assert all(not p.requires_grad for p in teacher.parameters())
        assert not {id(p) for p in teacher.parameters()} & own
        saved = torch.load(ckpt, weights_only=True)['state_dict']
        for key, value in teacher.state_dict().items():
            assert torch.equal(value, saved[key]), key
    # the checkpoint is the plain student, keys and values
    plain = build_segmentor()
    state = model.state_dict()
    assert list(state) == list(plain.state_dict())
    for key, value in model.student.state_dict().items():
        assert torch.equal(state[key], value)
    with pytest.raises(RuntimeError, match='ensemble of 2 teachers'):
        model.teacher


def test_checkpoint_teacher_stores_each_teacher(ckpts):
    model = build([segmentor_cfg(), stride16_cfg()], ckpts,
                  checkpoint_teacher=True)
    state = model.state_dict()
    assert not any(k.startswith('teacher.') for k in state)
    assert any(k.startswith('teacher1.') for k in state)
    assert any(k.startswith('teacher2.') for k in state)
    other = build([segmentor_cfg(), stride16_cfg()], None,
                  checkpoint_teacher=True)
    other.load_state_dict(state, strict=True)
    for mine, theirs in zip(model.teachers, other.teachers):
        for key, value in mine.state_dict().items():
            assert torch.equal(value, theirs.state_dict()[key]), key


def test_class_count_mismatch_names_the_teacher(ckpts):
    ten = segmentor_cfg()
    ten['decode_head']['num_classes'] = 10
    ten['auxiliary_head']['num_classes'] = 10
    with pytest.raises(ValueError, match='between teacher2 and student: the '
                       'teacher2 predicts 10 classes, the student 19'):
        build([segmentor_cfg(), ten], None)


@pytest.mark.parametrize('kwargs,match', [
    (dict(teacher_ckpt=['a.pth']), 'teacher_ckpt has 1 entries but there '
     'are 2 teachers'),
    (dict(teacher_weights=[1.0]), 'teacher_weights has 1 entries'),
    (dict(teacher_weights=[1.0, 0.0]), r'> 0, got 0\.0'),
    (dict(teacher_weights=[-1.0, 1.0]), r'> 0, got -1\.0'),
    (dict(teacher_ensemble='mean'), "got 'mean'"),
    (dict(losses=dict(loss_cwd=CWD)), r"loss_cwd \(CWDLoss\) applies its "
     r"softmax over spatial positions.*teacher_ensemble='loss'"),
])
def test_bad_ensembles(kwargs, match):
    kwargs.setdefault('teacher_ckpt', None)
    with pytest.raises(ValueError, match=match):
        build([segmentor_cfg(), segmentor_cfg()], **kwargs)


def test_missing_tap_names_each_teacher():
    no_aux = segmentor_cfg()
    no_aux.pop('auxiliary_head')
    with pytest.raises(ValueError, match=r"cannot distil head 'aux' from "
                       r"teacher2: 'aux' is not a tap of the teacher "
                       r"EncoderDecoder \(its taps: \['decode'\]\)"):
        build([segmentor_cfg(), no_aux], None,
              head_weights=dict(decode=1.0, aux=0.4))
    # the default pairs aux only where every teacher has it
    model = build([segmentor_cfg(), no_aux], None, head_weights=None)
    assert model.loss_heads['loss_gdkd'] == {'decode': 1.0}


class _Payload:
    """An arbitrary pickled object: not allowed by the safe loader."""


def test_each_teacher_checkpoint_is_loaded_safely(ckpts, tmp_path):
    from mmgdkd.compat import UnsafeCheckpointError
    state = torch.load(ckpts[1], weights_only=True)
    state['meta'] = {'payload': _Payload()}
    evil = str(tmp_path / 'evil_teacher2.pth')
    torch.save(state, evil)
    with pytest.raises(UnsafeCheckpointError, match='evil_teacher2.pth'):
        build([segmentor_cfg(), segmentor_cfg()], [ckpts[0], evil])
