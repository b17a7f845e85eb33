# Copyright (c) mmgdkd contributors. All rights reserved.
"""ClsDistiller with an ensemble of teachers: identities and errors."""
import pytest
import torch
import torch.nn.functional as F

from test_cls_distiller import (DKD, GDKD, NUM_CLASSES, batch, build_model,
                                classifier)

KD = dict(type='KDLoss', temperature=2.0, ignore_index=None)
LOSSES = dict(loss_gdkd=GDKD, loss_dkd=DKD, loss_kd=KD)


@pytest.fixture(scope='module')
def ckpts(tmp_path_factory):
    """A ResNet-14 and a ResNet-8x4 teacher (different architectures)."""
    root = tmp_path_factory.mktemp('cls_ensemble')
    paths = []
    for arch, seed in (('resnet14', 1), ('resnet8x4', 2)):
        torch.manual_seed(seed)
        path = str(root / f'{arch}.pth')
        torch.save({'state_dict': build_model(classifier(arch)).state_dict(),
                    'meta': {}}, path)
        paths.append(path)
    return paths


def build(teacher, teacher_ckpt, **kwargs):
    cfg = dict(type='ClsDistiller', student=classifier('resnet8'),
               teacher=teacher, teacher_ckpt=teacher_ckpt,
               distill_losses=LOSSES)
    ckpts = teacher_ckpt if isinstance(teacher_ckpt, list) else [teacher_ckpt]
    if None in ckpts:
        cfg['allow_untrained_teacher'] = True  # random teachers on purpose
    cfg.update(kwargs)
    torch.manual_seed(0)
    return build_model(cfg)


@pytest.fixture(scope='module')
def data():
    model = build(classifier('resnet14'), None)
    return model.data_preprocessor(batch(n=8), True)


@pytest.mark.parametrize('mode', ['prob', 'loss'])
def test_two_copies_of_one_teacher_are_that_teacher(ckpts, data, mode):
    single = build(classifier('resnet14'), ckpts[0])(**data, mode='loss')
    double = build([classifier('resnet14')] * 2, [ckpts[0]] * 2,
                   teacher_ensemble=mode)(**data, mode='loss')
    per_teacher = {k for k in double if '.teacher' in k}
    assert len(per_teacher) == (6 if mode == 'loss' else 0)
    assert set(double) - per_teacher == set(single)
    for key, value in single.items():
        if mode == 'loss' or not key.startswith('distill.'):
            assert torch.equal(double[key], value), key
        else:
            # the loss sees T*log_softmax(z/T) instead of z: the same
            # softmax up to fp32 rounding, which the KL of near-equal
            # distributions amplifies (float64: test_teacher_ensemble.py)
            torch.testing.assert_close(double[key], value, rtol=1e-4,
                                       atol=1e-6, msg=key)


def test_loss_mode_is_the_weighted_sum_of_single_teacher_distillers(
        ckpts, data):
    specs = [classifier('resnet14'), classifier('resnet8x4')]
    ensemble = build(specs, ckpts, teacher_ensemble='loss',
                     teacher_weights=[3, 1])(**data, mode='loss')
    singles = [build(spec, ckpt)(**data, mode='loss')
               for spec, ckpt in zip(specs, ckpts)]
    for name in ('gdkd', 'dkd', 'kd'):
        key = f'distill.head.loss_{name}'
        torch.testing.assert_close(
            ensemble[key], 0.75 * singles[0][key] + 0.25 * singles[1][key])
        for i, single in enumerate(singles, 1):
            torch.testing.assert_close(
                ensemble[f'distill.head.teacher{i}.{name}'], single[key])
    torch.testing.assert_close(ensemble['student.loss'],
                               singles[0]['student.loss'])


def test_prob_mode_softmax_identity(ckpts, data):
    model = build([classifier('resnet14'), classifier('resnet8x4')], ckpts,
                  teacher_weights=[1, 4])
    seen = {}
    for name, loss in model.distill_losses.items():
        forward = loss.forward

        def spy(student, teacher, target=None, _name=name, _fwd=forward):
            seen[_name] = teacher
            return _fwd(student, teacher, target)

        loss.forward = spy
    losses = model(**data, mode='loss')
    with torch.no_grad():
        teachers = [t(data['inputs']) for t in model.teachers]
    for name, temperature in (('loss_gdkd', 4.0), ('loss_dkd', 4.0),
                              ('loss_kd', 2.0)):
        mixture = sum(w * F.softmax(z.double() / temperature, 1)
                      for w, z in zip((0.2, 0.8), teachers))
        torch.testing.assert_close(
            F.softmax(seen[name].double() / temperature, 1), mixture,
            rtol=0, atol=1e-6)
        # the logged term is the loss on the ensemble teacher
        loss = model.distill_losses[name]
        target = torch.cat([s.gt_label for s in data['data_samples']])
        with torch.no_grad():
            student = model.student(data['inputs'])
        torch.testing.assert_close(
            losses[f'distill.head.{name}'],
            loss(student, seen[name], target))


def test_teachers_outside_the_trainable_model(ckpts):
    model = build([classifier('resnet14'), classifier('resnet8x4')], ckpts)
    model.train()
    own = {id(p) for p in model.parameters()}
    for teacher in model.teachers:
        assert all(not m.training for m in teacher.modules())
        assert not {id(p) for p in teacher.parameters()} & own
    plain = build_model(classifier('resnet8'))
    assert list(model.state_dict()) == list(plain.state_dict())


def test_class_count_mismatch_names_the_teacher():
    with pytest.raises(ValueError, match='between teacher2 and student: the '
                       f'teacher2 predicts 12 classes, the student '
                       f'{NUM_CLASSES}'):
        build([classifier('resnet14'),
               classifier('resnet8x4', num_classes=12)], None)


def test_bad_ensembles(ckpts):
    with pytest.raises(ValueError, match='teacher_ckpt has 1 entries'):
        build([classifier('resnet14')] * 2, [ckpts[0]])
    with pytest.raises(ValueError, match=r'> 0, got 0'):
        build([classifier('resnet14')] * 2, None, teacher_weights=[0, 1])
