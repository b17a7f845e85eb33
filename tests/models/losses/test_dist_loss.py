# Copyright (c) mmgdkd contributors. All rights reserved.
"""DISTLoss against an independent float64 formula (per-row / per-column
Pearson correlations written out with numpy's corrcoef and with the
reference's cosine convention), segmentation rows, ignore rows, errors."""
import numpy as np
import pytest
import torch

import mmgdkd  # noqa: F401  (registers the losses)
from mmgdkd.models.losses import DISTLoss


def logits(*shape, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


def rows(x):
    return x if x.dim() == 2 else x.permute(0, 2, 3, 1).reshape(
        -1, x.shape[1])


def ref_dist(zs, zt, beta, gamma, tau, eps=1e-8, keep=None):
    """Loops over rows and classes; ``1 - r`` with the reference's
    ``cos(a - mean a, b - mean b)``, eps added to the norm product."""
    ps = torch.softmax(rows(zs) / tau, 1)
    pt = torch.softmax(rows(zt) / tau, 1)
    if keep is not None:
        ps, pt = ps[keep], pt[keep]

    def r(a, b):
        a, b = a - a.mean(), b - b.mean()
        return (a * b).sum() / (a.norm() * b.norm() + eps)

    inter = torch.stack([1 - r(ps[i], pt[i]) for i in range(len(ps))]).mean()
    intra = torch.stack(
        [1 - r(ps[:, j], pt[:, j]) for j in range(ps.shape[1])]).mean()
    return tau**2 * (beta * inter + gamma * intra), inter * tau**2, \
        intra * tau**2


def corrcoef_dist(zs, zt, beta, gamma, tau):
    """numpy's Pearson correlation (no eps): agrees to ~eps/norm."""
    ps = torch.softmax(rows(zs) / tau, 1).numpy()
    pt = torch.softmax(rows(zt) / tau, 1).numpy()
    inter = np.mean([1 - np.corrcoef(a, b)[0, 1] for a, b in zip(ps, pt)])
    intra = np.mean(
        [1 - np.corrcoef(a, b)[0, 1] for a, b in zip(ps.T, pt.T)])
    return tau**2 * (beta * inter + gamma * intra)


@pytest.mark.parametrize('beta,gamma,tau', [(1.0, 1.0, 1.0), (2.0, 2.0, 4.0),
                                            (0.5, 3.0, 2.0)])
@pytest.mark.parametrize('shape', [(16, 10), (2, 7, 3, 4)])
def test_parity_float64(shape, beta, gamma, tau):
    zs, zt = logits(*shape, seed=1), logits(*shape, scale=4.0, seed=2)
    loss_fn = DISTLoss(beta=beta, gamma=gamma, temperature=tau)
    zs_g = zs.clone().requires_grad_()
    got = loss_fn(zs_g, zt)
    grad, = torch.autograd.grad(got, zs_g)
    zs_r = zs.clone().requires_grad_()
    want, inter, intra = ref_dist(zs_r, zt, beta, gamma, tau)
    grad_ref, = torch.autograd.grad(want, zs_r)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-8, atol=1e-12)
    comp = loss_fn.last_components
    torch.testing.assert_close(comp['inter'], inter.float())
    torch.testing.assert_close(comp['intra'], intra.float())
    assert float(got) == pytest.approx(
        corrcoef_dist(zs, zt, beta, gamma, tau), rel=1e-5)


def test_zero_at_equality_and_positive_otherwise():
    z = logits(8, 5)
    # not exactly 0: eps / |centered p|^2 at tau=4 is ~1e-7 per relation
    assert float(DISTLoss(temperature=4.0)(z, z)) == pytest.approx(
        0.0, abs=1e-4)
    assert float(DISTLoss(temperature=4.0, eps=0.0)(z, z)) == pytest.approx(
        0.0, abs=1e-12)
    assert float(DISTLoss()(logits(8, 5, seed=3), z)) > 0.1


def test_loss_weight_and_float32():
    zs, zt = logits(32, 100, seed=4), logits(32, 100, scale=5.0, seed=5)
    base = DISTLoss(beta=2.0, gamma=2.0, temperature=4.0)(zs, zt)
    weighted = DISTLoss(beta=2.0, gamma=2.0, temperature=4.0,
                        loss_weight=3.0)(zs, zt)
    torch.testing.assert_close(weighted, 3 * base)
    f32 = DISTLoss(beta=2.0, gamma=2.0, temperature=4.0)(zs.float(),
                                                          zt.float())
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), base, rtol=1e-5, atol=1e-6)


def test_segmentation_ignore_and_teacher_resize():
    zs, zt = logits(2, 6, 4, 5, seed=6), logits(2, 6, 4, 5, seed=7)
    y = torch.randint(0, 6, (2, 4, 5),
                      generator=torch.Generator().manual_seed(0))
    y[1, 1:3] = 255
    keep = y.reshape(-1) != 255  # pixel rows in (n, h, w) order
    want, _, _ = ref_dist(zs, zt, 1.0, 1.0, 1.0, keep=keep)
    got = DISTLoss(ignore_index=255)(zs, zt, y)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # default ignore_index=None uses every pixel, as the reference
    torch.testing.assert_close(
        DISTLoss()(zs, zt, y), ref_dist(zs, zt, 1.0, 1.0, 1.0)[0])
    # a coarser teacher is resized bilinearly to the student's grid
    small = logits(2, 6, 2, 3, seed=8)
    up = torch.nn.functional.interpolate(
        small, size=(4, 5), mode='bilinear', align_corners=False)
    torch.testing.assert_close(DISTLoss()(zs, small), DISTLoss()(zs, up))


def test_all_ignored_is_zero_with_graph():
    zs = logits(2, 4, 2, 2).requires_grad_()
    y = torch.full((2, 2, 2), 255)
    loss = DISTLoss(ignore_index=255)(zs, logits(2, 4, 2, 2, seed=1), y)
    assert float(loss) == 0.0
    grad, = torch.autograd.grad(loss, zs)
    assert torch.equal(grad, torch.zeros_like(zs))


def test_errors_and_registry():
    with pytest.raises(ValueError, match='beta must be a finite number >= 0'
                       ', got -1'):
        DISTLoss(beta=-1)
    with pytest.raises(ValueError, match='temperature must be a finite '
                       'number > 0, got 0'):
        DISTLoss(temperature=0)
    with pytest.raises(ValueError, match='temperature must be a finite '
                       'number > 0, got nan'):
        DISTLoss(temperature=float('nan'))
    with pytest.raises(ValueError, match='must agree in N, C'):
        DISTLoss()(logits(4, 5), logits(4, 6))
    teacher = logits(4, 5)
    teacher[2, 1] = float('nan')
    with pytest.raises(ValueError, match='teacher logits must be finite'):
        DISTLoss()(logits(4, 5), teacher)
    with pytest.raises(ValueError, match=r'target must be an integer tensor '
                       r'of shape \(N,\) with N=4'):
        DISTLoss(ignore_index=255)(logits(4, 5), logits(4, 5),
                                   torch.zeros(3, dtype=torch.long))
    from mmpretrain.registry import MODELS as CLS_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    for registry in (SEG_MODELS, CLS_MODELS):
        loss_fn = registry.build(
            dict(type='DISTLoss', beta=2.0, gamma=2.0, temperature=4.0))
        assert isinstance(loss_fn, DISTLoss) and loss_fn.gamma == 2.0
        assert loss_fn.loss_name == 'loss_dist'
