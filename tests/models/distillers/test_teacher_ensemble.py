# Copyright (c) mmgdkd contributors. All rights reserved.
"""Teacher ensembles: the 'prob' logits, weights and argument checks."""
import pytest
import torch
import torch.nn as nn

from mmgdkd.models.distillers.teacher_ensemble import (
    TeacherEnsemble, class_softmax_temperature, ensemble_logits,
    expand_teachers, normalise_weights)
from mmgdkd.models.losses import (CWDLoss, DISTLoss, DKDLoss, GDKDLoss,
                                  KDLoss)


def mixture64(logits, weights, temperature):
    """Independent float64 oracle: sum_i w_i softmax(z_i / T)."""
    return sum(w * torch.softmax(z.double() / temperature, dim=1)
               for w, z in zip(weights, logits))


@pytest.mark.parametrize('temperature', [0.5, 1.0, 4.0])
@pytest.mark.parametrize('scale', [1.0, 30.0])
@pytest.mark.parametrize('shape', [(6, 19), (2, 19, 5, 7)])
def test_softmax_of_ensemble_logits_is_the_weighted_mixture(
        temperature, scale, shape):
    gen = torch.Generator().manual_seed(0)
    logits = [torch.randn(shape, generator=gen) * scale for _ in range(3)]
    weights = normalise_weights([1.0, 2.0, 5.0], 3)
    ens = ensemble_logits(logits, weights, temperature)
    assert ens.dtype == torch.float32 and ens.shape == shape
    torch.testing.assert_close(
        torch.softmax(ens.double() / temperature, dim=1),
        mixture64(logits, weights, temperature), rtol=0, atol=2e-6)
    # float64 in, float64 out, to float64 precision
    ens64 = ensemble_logits([z.double() for z in logits], weights,
                            temperature)
    assert ens64.dtype == torch.float64
    torch.testing.assert_close(
        torch.softmax(ens64 / temperature, dim=1),
        mixture64(logits, weights, temperature), rtol=0, atol=1e-12)


def test_ensemble_logits_are_stable_far_apart_teachers():
    # each teacher puts all its mass on another class: fp32 softmax
    # underflows, the log-space mixture does not
    a = torch.tensor([[1e4, 0.0, -1e4]])
    b = torch.tensor([[-1e4, 1e4, 0.0]])
    ens = ensemble_logits([a, b], (0.25, 0.75), 1.0)
    assert torch.isfinite(ens).all()
    torch.testing.assert_close(
        torch.softmax(ens, dim=1), torch.tensor([[0.25, 0.75, 0.0]]))


def test_identical_teachers_give_the_log_softmax_exactly():
    z = torch.randn(4, 19, 3, 3) * 5
    for temperature in (1.0, 4.0):
        ens = ensemble_logits([z, z.clone()], (0.5, 0.5), temperature)
        expected = torch.log_softmax(z / temperature, 1) * temperature
        assert torch.equal(ens, expected)


def test_ensemble_logits_carry_no_gradient_even_from_grad_inputs():
    # the docstring's "no gradient" must hold outside no_grad too: the
    # in-place arithmetic made such a backward fail
    logits = [torch.randn(3, 6, requires_grad=True) for _ in range(2)]
    ens = ensemble_logits(logits, (0.5, 0.5), 2.0)
    assert not ens.requires_grad
    student = torch.randn(3, 6, requires_grad=True)
    (student * ens).sum().backward()
    assert all(z.grad is None for z in logits)
    torch.testing.assert_close(student.grad, ens)


def test_autocast_teacher_logits_are_combined_in_fp32():
    z = torch.randn(2, 5).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ens = ensemble_logits([z, -z], (0.5, 0.5), 2.0)
    assert ens.dtype == torch.float32


def test_weights_default_equal_and_normalised():
    assert normalise_weights(None, 4) == (0.25, ) * 4
    assert normalise_weights([1, 3], 2) == (0.25, 0.75)
    assert normalise_weights((2.0, ), 1) == (1.0, )
    # no overflow of the sum (was (0.0, 0.0)) nor underflow
    assert normalise_weights([1e308, 1e308], 2) == (0.5, 0.5)
    assert normalise_weights([1e-320, 3e-320], 2) == (0.25, 0.75)
    assert sum(normalise_weights([1.0] * 3, 3)) == 1.0


@pytest.mark.parametrize('weights,match', [
    ([1.0, 0.0], r'> 0, got 0\.0'),
    ([1.0, -2.0], r'> 0, got -2\.0'),
    ([1.0, float('nan')], 'nan'),
    ([1.0, float('inf')], 'inf'),
    ([1.0, True], 'True'),
    ([1.0, 1.0, 1.0], 'has 3 entries but there are 2 teachers'),
    (1.0, 'list of 2 positive numbers'),
])
def test_bad_weights(weights, match):
    with pytest.raises(ValueError, match=match):
        normalise_weights(weights, 2)


def test_expand_teachers():
    a, b = dict(type='A'), dict(type='B')
    assert expand_teachers(a, 'a.pth', None) == ([a], ['a.pth'], (1.0, ))
    assert expand_teachers([a, b], None, [1, 1]) == \
        ([a, b], [None, None], (0.5, 0.5))
    assert expand_teachers([a, b], ['a.pth', None], None)[1] == \
        ['a.pth', None]
    with pytest.raises(ValueError, match='teacher_ckpt has 1 entries but '
                       'there are 2 teachers'):
        expand_teachers([a, b], ['a.pth'], None)
    with pytest.raises(ValueError, match=r"2 teachers need teacher_ckpt as "
                       r"a list of 2 .*'a.pth'"):
        expand_teachers([a, b], 'a.pth', None)
    with pytest.raises(ValueError, match='empty list'):
        expand_teachers([], None, None)
    with pytest.raises(ValueError, match='got 3'):
        expand_teachers([a, b], ['a.pth', 3], None)


def test_each_loss_declares_its_temperature():
    assert class_softmax_temperature('loss_kd', KDLoss(temperature=3.)) == 3.
    assert class_softmax_temperature('loss_dkd', DKDLoss(temperature=2.)) \
        == 2.
    assert class_softmax_temperature('loss_gdkd', GDKDLoss()) == 1.
    with pytest.raises(ValueError, match=r"loss_cwd \(CWDLoss\) applies its "
                       r"softmax over spatial positions.*teacher_ensemble="
                       r"'loss'"):
        class_softmax_temperature('loss_cwd', CWDLoss())

    class Undeclared(nn.Module):
        temperature = 1.0

    with pytest.raises(ValueError, match=r'loss_x \(Undeclared\) does not '
                       'declare a softmax over classes'):
        class_softmax_temperature('loss_x', Undeclared())


def test_bad_mode():
    with pytest.raises(ValueError, match="got 'mean'"):
        TeacherEnsemble((0.5, 0.5), 'mean')


def test_cwd_in_prob_mode_only_matters_for_an_ensemble():
    TeacherEnsemble((1.0, ), 'prob').check_losses(dict(loss_cwd=CWDLoss()))
    TeacherEnsemble((0.5, 0.5), 'loss').check_losses(
        dict(loss_cwd=CWDLoss()))
    with pytest.raises(ValueError, match='spatial positions'):
        TeacherEnsemble((0.5, 0.5), 'prob').check_losses(
            dict(loss_cwd=CWDLoss()))


def test_loss_mode_components_and_per_teacher_terms():
    gen = torch.Generator().manual_seed(1)
    student = torch.randn(8, 10, generator=gen, requires_grad=True)
    teachers = [torch.randn(8, 10, generator=gen) for _ in range(2)]
    loss = GDKDLoss(k=3, w0=1.0, w1=2.0, w2=3.0, temperature=2.0,
                    ignore_index=None)
    term = TeacherEnsemble((0.25, 0.75), 'loss').term(
        loss, student, teachers, None)
    singles, parts = [], []
    for teacher in teachers:
        singles.append(loss(student, teacher))
        parts.append(dict(loss.last_components))
    torch.testing.assert_close(term.value,
                               0.25 * singles[0] + 0.75 * singles[1])
    assert set(term.per_teacher) == {'teacher1', 'teacher2'}
    torch.testing.assert_close(term.per_teacher['teacher2'], singles[1])
    for part in ('high', 'low_top', 'low_other'):
        torch.testing.assert_close(
            term.components[part],
            0.25 * parts[0][part] + 0.75 * parts[1][part])
    # GDKD's identity holds for the averaged components
    c = term.components
    torch.testing.assert_close(
        term.value, c['high'] + 2.0 * c['low_top'] + 3.0 * c['low_other'])
    term.value.backward()
    assert student.grad.abs().sum() > 0


@pytest.mark.parametrize('loss', [
    GDKDLoss(k=3, temperature=3.0, ignore_index=None),
    GDKDLoss(k=2, strategy='adaptive', temperature=2.0, ignore_index=None),
    DKDLoss(temperature=4.0, ignore_index=None),
    KDLoss(temperature=1.5, ignore_index=None),
], ids=['gdkd', 'gdkd_adaptive', 'dkd', 'kd'])
def test_ensemble_of_copies_gives_the_single_teacher_loss_float64(loss):
    """Identical teachers give the teacher's own loss (docs/losses.md,
    "Teacher ensembles"; float64, so only the loss's own rounding
    remains)."""
    gen = torch.Generator().manual_seed(2)
    student = torch.randn(16, 12, generator=gen, dtype=torch.float64)
    teacher = torch.randn(16, 12, generator=gen, dtype=torch.float64) * 3
    target = torch.randint(0, 12, (16, ), generator=gen)
    ensemble = TeacherEnsemble((0.5, 0.5), 'prob')
    term = ensemble.term(loss, student, [teacher, teacher], target)
    single = loss(student, teacher, target)
    torch.testing.assert_close(term.value, single, rtol=1e-12, atol=1e-14)


def test_dist_has_a_class_softmax_and_ls_is_refused():
    assert class_softmax_temperature('loss_dist',
                                     DISTLoss(temperature=4.0)) == 4.0
    with pytest.raises(ValueError, match=r"loss_gdkd \(GDKDLoss\) has "
                       r"logit_standardization=True.*teacher_ensemble="
                       r"'loss'"):
        class_softmax_temperature(
            'loss_gdkd', GDKDLoss(logit_standardization=True))


@pytest.mark.parametrize('make_loss', [
    lambda: GDKDLoss(k=3, temperature=3.0, ignore_index=None),
    lambda: GDKDLoss(k=2, strategy='adaptive', temperature=2.0,
                     ignore_index=None),
    lambda: GDKDLoss(k=2, strategy='topk3', temperature=0.5,
                     ignore_index=None),
    lambda: DKDLoss(temperature=4.0, ignore_index=None),
    lambda: KDLoss(temperature=0.7, ignore_index=None),
    lambda: DISTLoss(temperature=2.5),
], ids=['gdkd', 'gdkd_adaptive', 'gdkd3', 'dkd', 'kd', 'dist'])
@pytest.mark.parametrize('shape', [(8, 10), (2, 10, 3, 4)])
def test_prob_loss_is_the_loss_on_the_mixture_float64(make_loss, shape):
    """Distinct teachers: each loss sees, at its own temperature, logits
    whose softmax is the weighted mixture (independent oracle: the log of
    the float64 mixture, times T)."""
    loss = make_loss()
    gen = torch.Generator().manual_seed(3)
    student = torch.randn(shape, generator=gen, dtype=torch.float64)
    teachers = [torch.randn(shape, generator=gen, dtype=torch.float64) * s
                for s in (1.0, 4.0, 9.0)]
    target = torch.randint(0, 10, (shape[0], ) + shape[2:], generator=gen)
    weights = normalise_weights([1.0, 2.0, 3.0], 3)
    temperature = loss.temperature
    term = TeacherEnsemble(weights, 'prob').term(loss, student, teachers,
                                                 target)
    mixture = mixture64(teachers, weights, temperature)
    expected = loss(student, mixture.log() * temperature, target)
    torch.testing.assert_close(term.value, expected, rtol=1e-12, atol=1e-14)
    # not the loss of any one teacher nor of the mean logits
    for other in teachers + [sum(w * z for w, z in zip(weights, teachers))]:
        assert not torch.allclose(term.value, loss(student, other, target),
                                  rtol=1e-3)
