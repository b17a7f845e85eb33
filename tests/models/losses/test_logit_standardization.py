# Copyright (c) mmgdkd contributors. All rights reserved.
"""Logit standardization: the transform and LS-KD / LS-DKD / LS-GDKD against
independent float64 formulas (the authors' LSKD convention: mean, unbiased
std, eps 1e-7 added to the std, gradient through both statistics)."""
import math

import pytest
import torch

import mmgdkd  # noqa: F401  (registers the losses)
from mmgdkd.models.losses import DKDLoss, GDKDLoss, KDLoss
from mmgdkd.models.losses.logit_standardization import (
    standardize_logits, standardized_span_bound)


def logits(*shape, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


def rows(x):
    return x if x.dim() == 2 else x.permute(0, 2, 3, 1).reshape(
        -1, x.shape[1])


def ref_standardize(z):
    """Per row, written out: (z - mean) / (1e-7 + sqrt(ss / (C - 1)))."""
    c = z.shape[1]
    mean = z.sum(1, keepdim=True) / c
    std = (((z - mean)**2).sum(1, keepdim=True) / (c - 1)).sqrt()
    return (z - mean) / (1e-7 + std)


def kl_rows(log_a, log_b):
    """KL(a || b) per row from log-probabilities."""
    return (log_a.exp() * (log_a - log_b)).sum(1)


def log_softmax_masked(z, keep):
    z = z.masked_fill(~keep, float('-inf'))
    return (z - torch.logsumexp(z, 1, keepdim=True)).masked_fill(~keep, 0)


def ref_decoupled(zs, zt, top, w, T):
    """sum of w0*KL(masses) + w1*KL(in top) + w2*KL(in rest), row mean."""
    ls, lt = torch.log_softmax(zs / T, 1), torch.log_softmax(zt / T, 1)
    mass = lambda lp: torch.stack(  # noqa: E731
        [torch.logsumexp(lp.masked_fill(~top, -math.inf), 1),
         torch.logsumexp(lp.masked_fill(top, -math.inf), 1)], 1)
    high = kl_rows(mass(lt), mass(ls))
    low_top = kl_rows(log_softmax_masked(zt / T, top),
                      log_softmax_masked(zs / T, top))
    low_other = kl_rows(log_softmax_masked(zt / T, ~top),
                        log_softmax_masked(zs / T, ~top))
    total = w[0] * high + w[1] * low_top + w[2] * low_other
    return total.mean() * T**2


def ref_ls_kd(zs, zt, T):
    zs, zt = ref_standardize(rows(zs)), ref_standardize(rows(zt))
    return kl_rows(torch.log_softmax(zt / T, 1),
                   torch.log_softmax(zs / T, 1)).mean() * T**2


def ref_ls_gdkd(zs, zt, k, w, T):
    zs, zt = rows(zs), rows(zt)
    # the partition comes from the raw teacher, as in the authors' LS-GDKD
    idx = zt.topk(k, 1).indices
    top = torch.zeros_like(zt, dtype=torch.bool).scatter_(1, idx, True)
    return ref_decoupled(ref_standardize(zs), ref_standardize(zt), top, w, T)


def ref_ls_dkd(zs, zt, y, alpha, beta, T):
    zs, zt, y = rows(zs), rows(zt), y.reshape(-1)
    gt = torch.zeros_like(zt, dtype=torch.bool).scatter_(1, y[:, None], True)
    return ref_decoupled(
        ref_standardize(zs), ref_standardize(zt), gt, (alpha, 0.0, beta), T)


def loss_and_grad(fn, zs, *args):
    zs = zs.detach().clone().requires_grad_()
    loss = fn(zs, *args)
    grad, = torch.autograd.grad(loss, zs)
    return loss, grad


@pytest.mark.parametrize('shape,dim', [((5, 7), 1), ((2, 6, 3, 4), 1),
                                       ((3, 2), 1)])
def test_transform_matches_formula(shape, dim):
    z = logits(*shape)
    got = standardize_logits(z, dim=dim)
    moved = z.movedim(dim, -1).reshape(-1, shape[dim])
    want = ref_standardize(moved).reshape(
        z.movedim(dim, -1).shape).movedim(-1, dim)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # z-scored: zero mean, unbiased std 1 (up to eps) per row
    torch.testing.assert_close(got.mean(dim), torch.zeros_like(got.mean(dim)),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(got.std(dim), torch.ones_like(got.std(dim)),
                               rtol=1e-6, atol=0)


def test_transform_dtypes_and_constant_row():
    z = logits(4, 10).half()
    assert standardize_logits(z).dtype == torch.float32
    assert standardize_logits(z.double()).dtype == torch.float64
    const = torch.full((2, 5), 3.0)
    assert torch.equal(standardize_logits(const), torch.zeros(2, 5))


def test_span_bound_is_attained_and_holds():
    c = 9
    z = torch.zeros(1, c, dtype=torch.float64)
    z[0, 0] = 1.0  # one outlier: |z'| reaches (C-1)/sqrt(C)
    zs = standardize_logits(z)
    assert float(zs.abs().max()) == pytest.approx(
        (c - 1) / math.sqrt(c), rel=1e-6)
    spans = standardize_logits(logits(200, c, scale=10.0))
    spans = spans.amax(1) - spans.amin(1)
    assert float(spans.max()) <= standardized_span_bound(c)


@pytest.mark.parametrize('T', [1.0, 2.0, 4.0])
@pytest.mark.parametrize('shape', [(6, 10), (2, 5, 3, 4)])
def test_ls_kd_parity(shape, T):
    zs, zt = logits(*shape, seed=1), logits(*shape, scale=5.0, seed=2)
    loss_fn = KDLoss(temperature=T, logit_standardization=True)
    got, g = loss_and_grad(loss_fn, zs, zt)
    want, gw = loss_and_grad(lambda a, b: ref_ls_kd(a, b, T), zs, zt)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g, gw, rtol=1e-8, atol=1e-12)


def test_gradient_flows_through_statistics():
    """With detached mean/std the gradient would differ: the reference
    through the statistics matches, the detached variant does not."""
    zs, zt = logits(6, 10, seed=3), logits(6, 10, seed=4)
    _, g = loss_and_grad(KDLoss(temperature=4.0, logit_standardization=True),
                         zs, zt)

    def detached(a, b):
        mean = a.mean(1, keepdim=True).detach()
        std = a.std(1, keepdim=True).detach()
        za = (a - mean) / (1e-7 + std)
        zb = ref_standardize(b)
        return kl_rows(torch.log_softmax(zb / 4, 1),
                       torch.log_softmax(za / 4, 1)).mean() * 16

    _, g_detached = loss_and_grad(detached, zs, zt)
    assert (g - g_detached).abs().max() > 1e-3
    # the gradient of a z-scored input is orthogonal to shifts and scalings
    torch.testing.assert_close(g.sum(1), torch.zeros(6, dtype=g.dtype),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close((g * zs).sum(1), torch.zeros(
        6, dtype=g.dtype), rtol=0, atol=1e-7)  # eps breaks it slightly


@pytest.mark.parametrize('strategy', ['topk', 'topk3'])
@pytest.mark.parametrize('shape', [(8, 12), (2, 12, 3, 3)])
def test_ls_gdkd_parity(shape, strategy):
    zs, zt = logits(*shape, seed=5), logits(*shape, scale=4.0, seed=6)
    k, w, T = 4, (1.0, 2.0, 8.0), 4.0
    loss_fn = GDKDLoss(k=k, w0=w[0], w1=w[1], w2=w[2], temperature=T,
                       strategy=strategy, logit_standardization=True)
    got, g = loss_and_grad(loss_fn, zs, zt)
    if strategy == 'topk':
        want_fn = lambda a, b: ref_ls_gdkd(a, b, k, w, T)  # noqa: E731
    else:
        # GDKD3: top-1 / top-2..k / rest, via the chain rule on masses:
        # the 3-way mass KL = 2-way (top-k vs rest) + b_t(top-k) * KL of
        # (top-1 vs top-2..k) inside top-k.
        def want_fn(a, b):
            a, b = ref_standardize(rows(a)), ref_standardize(rows(b))
            idx = rows(zt).topk(k, 1).indices
            topk = torch.zeros_like(b, dtype=torch.bool).scatter_(
                1, idx, True)
            top1 = torch.zeros_like(topk).scatter_(1, idx[:, :1], True)
            ls, lt = torch.log_softmax(a / T, 1), torch.log_softmax(b / T, 1)
            groups = [top1, topk & ~top1, ~topk]
            mass = lambda lp: torch.stack(  # noqa: E731
                [torch.logsumexp(lp.masked_fill(~m, -math.inf), 1)
                 for m in groups], 1)
            high = kl_rows(mass(lt), mass(ls))
            mid = kl_rows(log_softmax_masked(b / T, groups[1]),
                          log_softmax_masked(a / T, groups[1]))
            rest = kl_rows(log_softmax_masked(b / T, groups[2]),
                           log_softmax_masked(a / T, groups[2]))
            return (w[0] * high + w[1] * mid + w[2] * rest).mean() * T**2
    want, gw = loss_and_grad(want_fn, zs, zt)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g, gw, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize('shape', [(8, 10), (2, 10, 3, 3)])
def test_ls_dkd_parity(shape):
    zs, zt = logits(*shape, seed=7), logits(*shape, scale=4.0, seed=8)
    g = torch.Generator().manual_seed(9)
    y = torch.randint(0, 10, (shape[0], ) + shape[2:], generator=g)
    loss_fn = DKDLoss(alpha=1.0, beta=8.0, temperature=4.0,
                      logit_standardization=True)
    got, grad = loss_and_grad(loss_fn, zs, zt, y)
    want, gw = loss_and_grad(
        lambda a, b, t: ref_ls_dkd(a, b, t, 1.0, 8.0, 4.0), zs, zt, y)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, gw, rtol=1e-8, atol=1e-12)


def test_pixelwise_with_ignore_and_affine_invariance():
    """Pixel-wise rows; ignored pixels drop out; a per-pixel affine change
    (a > 0) of either model's logits leaves every LS loss unchanged."""
    zs, zt = logits(2, 6, 4, 5, seed=10), logits(2, 6, 4, 5, seed=11)
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 6, (2, 4, 5), generator=g)
    y[0, :2] = 255
    valid = rows(y[:, None].double()).reshape(-1) != 255
    want = kl_rows(
        torch.log_softmax(ref_standardize(rows(zt))[valid], 1),
        torch.log_softmax(ref_standardize(rows(zs))[valid], 1)).mean()
    got = KDLoss(temperature=1.0, logit_standardization=True)(zs, zt, y)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    a = logits(2, 1, 4, 5, seed=12).abs() + 0.5
    b = logits(2, 1, 4, 5, seed=13)
    for cls, kwargs in ((KDLoss, {}), (DKDLoss, {}), (GDKDLoss, dict(k=2))):
        loss_fn = cls(logit_standardization=True, **kwargs)
        base = loss_fn(zs, zt, y)
        moved = loss_fn(zs * a + b, zt * 3.0 - 7.0, y)
        torch.testing.assert_close(moved, base, rtol=1e-6, atol=1e-9)
        # and it is not the plain loss
        plain = cls(**kwargs)(zs, zt, y)
        assert abs(float(plain - base)) > 1e-4


def test_off_by_default_and_float32_matches_float64():
    zs, zt = logits(16, 100, seed=14), logits(16, 100, scale=6.0, seed=15)
    assert not GDKDLoss().logit_standardization
    loss_fn = GDKDLoss(k=5, w0=1, w1=2, w2=8, temperature=4.0,
                       logit_standardization=True)
    f64 = loss_fn(zs, zt)
    f32 = loss_fn(zs.float(), zt.float())
    assert f32.dtype == torch.float32
    torch.testing.assert_close(f32.double(), f64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('cls', [KDLoss, DKDLoss, GDKDLoss])
def test_errors(cls):
    with pytest.raises(ValueError, match="logit_standardization must be "
                       "True or False, got 'yes'"):
        cls(logit_standardization='yes')
    with pytest.raises(ValueError, match='at least 2 classes'):
        standardize_logits(torch.zeros(3, 1))
