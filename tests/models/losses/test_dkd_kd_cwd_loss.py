# Copyright (c) mmgdkd contributors. All rights reserved.
"""DKD, KD and CWD against straightforward references; validation and
registration."""
import pytest
import torch
import torch.nn.functional as F

import mmgdkd  # noqa: F401  (registers the losses)
from mmgdkd.models.losses import CWDLoss, DKDLoss, KDLoss


def logits(*shape, scale=3.0, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype) * scale


def rows(x):
    return x if x.dim() == 2 else x.permute(0, 2, 3, 1).reshape(
        -1, x.shape[1])


def run(loss_fn, zs, zt, target=None):
    zs = zs.detach().clone().requires_grad_()
    loss = loss_fn(zs, zt, target)
    grad, = torch.autograd.grad(loss, zs)
    return loss, grad


def ref_dkd(zs, zt, target, alpha, beta, T, ignore_index=255):
    """mdistiller's DKD with exact non-target masking.

    mdistiller builds NCKD from ``log_softmax(z/T - 1000 * gt_mask)``; with
    -inf instead of -1000 the non-target distribution is exact (the two
    differ by ~exp(-1000/T + logit range), nothing at T=4, not so at large
    T or logits).
    """
    zs, zt, target = rows(zs), rows(zt), target.reshape(-1)
    valid = target != ignore_index
    zs, zt, target = zs[valid], zt[valid], target[valid]
    gt = torch.zeros_like(zs, dtype=torch.bool).scatter_(
        1, target[:, None], True)
    ps, pt = F.softmax(zs / T, 1), F.softmax(zt / T, 1)
    bs = torch.stack([(ps * gt).sum(1), (ps * ~gt).sum(1)], 1)
    bt = torch.stack([(pt * gt).sum(1), (pt * ~gt).sum(1)], 1)
    tckd = (bt * (bt.log() - bs.log())).sum(1).mean() * T**2
    ls = F.log_softmax((zs / T).masked_fill(gt, float('-inf')), 1)
    lt = F.log_softmax((zt / T).masked_fill(gt, float('-inf')), 1)
    ls, lt = ls.masked_fill(gt, 0), lt.masked_fill(gt, 0)
    nckd = (lt.exp() * (lt - ls)).sum(1).mean() * T**2
    return alpha * tckd + beta * nckd, tckd, nckd


def ref_kd(zs, zt, T, valid=None):
    zs, zt = rows(zs), rows(zt)
    kl = F.kl_div(F.log_softmax(zs / T, 1), F.log_softmax(zt / T, 1),
                  reduction='none', log_target=True).sum(1)
    valid = torch.ones_like(kl, dtype=torch.bool) if valid is None else valid
    return (kl * valid).sum() / valid.sum() * T**2


def ref_cwd(zs, zt, tau):
    """MMRazor's ChannelWiseDivergence (loss_weight 1)."""
    n, c, h, w = zs.shape
    st = F.softmax(zt.reshape(-1, h * w) / tau, 1)
    loss = torch.sum(st * F.log_softmax(zt.reshape(-1, h * w) / tau, 1) -
                     st * F.log_softmax(zs.reshape(-1, h * w) / tau, 1))
    return loss * tau**2 / (n * c)


# ---------------------------------------------------------------------------
# DKD
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('shape', [(16, 10), (2, 6, 3, 5)])
@pytest.mark.parametrize('alpha,beta,T', [(1.0, 8.0, 4.0), (1.0, 0.5, 1.0)])
def test_dkd_parity(shape, alpha, beta, T):
    zs, zt = logits(*shape, seed=1), logits(*shape, seed=2)
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
    target.view(-1)[::4] = 255
    loss_fn = DKDLoss(alpha=alpha, beta=beta, temperature=T, loss_weight=0.7)
    loss, grad = run(loss_fn, zs, zt, target)
    ref, ref_grad = run(
        lambda s, t, y: 0.7 * ref_dkd(s, t, y, alpha, beta, T)[0], zs, zt,
        target)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)
    _, tckd, nckd = ref_dkd(zs, zt, target, alpha, beta, T)
    c = loss_fn.last_components
    torch.testing.assert_close(c['tckd'], tckd)
    torch.testing.assert_close(c['nckd'], nckd)
    torch.testing.assert_close(
        loss, 0.7 * (alpha * c['tckd'] + beta * c['nckd']))


def test_dkd_float32_and_large_target():
    zs, zt = logits(2, 19, 4, 6, seed=4), logits(2, 19, 8, 12, seed=5)
    target = torch.randint(0, 19, (2, 16, 24))
    target[:, :3] = 255
    loss_fn = DKDLoss(alpha=1.0, beta=2.0, temperature=1.0)
    loss, grad = run(loss_fn, zs.float(), zt.float(), target)
    zt_r = F.interpolate(zt, (4, 6), mode='bilinear', align_corners=False)
    y_r = F.interpolate(target[:, None].float(), (4, 6),
                        mode='nearest')[:, 0].long()
    ref, ref_grad = run(lambda s, t, y: ref_dkd(s, t, y, 1.0, 2.0, 1.0)[0],
                        zs, zt_r, y_r)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-5,
                               atol=1e-6 * ref_grad.abs().max())


def test_dkd_errors():
    zs, zt = logits(4, 5), logits(4, 5)
    with pytest.raises(ValueError, match='needs the target'):
        DKDLoss()(zs, zt)
    with pytest.raises(ValueError, match=r'in \[0, 5\) .* got 7'):
        DKDLoss()(zs, zt, torch.tensor([0, 1, 7, 255]))
    with pytest.raises(ValueError, match=r'got -1'):
        DKDLoss()(zs, zt, torch.tensor([0, -1, 2, 255]))
    with pytest.raises(ValueError, match='alpha must be .* got -1'):
        DKDLoss(alpha=-1)
    with pytest.raises(ValueError, match='temperature must be .* got 0'):
        DKDLoss(temperature=0)
    # Ignored rows may hold any label; all ignored gives a zero with graph.
    s = zs.clone().requires_grad_()
    loss = DKDLoss()(s, zt, torch.full((4, ), 255))
    loss.backward()
    assert loss.item() == 0 and torch.equal(s.grad, torch.zeros_like(s))


# ---------------------------------------------------------------------------
# KD
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('shape', [(16, 10), (2, 6, 3, 5)])
@pytest.mark.parametrize('T', [1.0, 4.0])
def test_kd_parity(shape, T):
    zs, zt = logits(*shape, seed=6), logits(*shape, seed=7)
    loss, grad = run(KDLoss(temperature=T, loss_weight=2.0), zs, zt)
    ref, ref_grad = run(lambda s, t, y: 2.0 * ref_kd(s, t, T), zs, zt)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)
    # The closed form (docs/losses.md, "The gradient"): T (p - q) / rows.
    p, q = F.softmax(zs / T, 1), F.softmax(zt / T, 1)
    n_rows = zs.numel() // zs.shape[1]
    torch.testing.assert_close(grad, 2.0 * T * (p - q) / n_rows)


def test_kd_ignore_and_resize():
    zs, zt = logits(2, 5, 4, 4, seed=8), logits(2, 5, 2, 2, seed=9)
    target = torch.randint(0, 5, (2, 4, 4))
    target[0] = 255
    loss = KDLoss(temperature=2.0)(zs.float(), zt.float(), target)
    zt_r = F.interpolate(zt, (4, 4), mode='bilinear', align_corners=False)
    ref = ref_kd(zs, zt_r, 2.0, target.reshape(-1) != 255)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------
# CWD
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('tau', [1.0, 4.0])
def test_cwd_parity(tau):
    zs, zt = logits(2, 5, 6, 7, seed=10), logits(2, 5, 6, 7, seed=11)
    loss, grad = run(CWDLoss(temperature=tau, loss_weight=5.0), zs, zt)
    ref, ref_grad = run(lambda s, t, y: 5.0 * ref_cwd(s, t, tau), zs, zt)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)
    # The target is ignored; a smaller teacher is resized.
    torch.testing.assert_close(
        CWDLoss(temperature=tau)(zs, zt, torch.zeros(2, 6, 7).long()),
        ref / 5.0)
    small = logits(2, 5, 3, 4, seed=12)
    big = F.interpolate(small, (6, 7), mode='bilinear', align_corners=False)
    torch.testing.assert_close(CWDLoss()(zs, small), ref_cwd(zs, big, 1.0))


def test_cwd_errors():
    with pytest.raises(ValueError, match=r'\(N, C, H, W\) .* \(4, 5\)'):
        CWDLoss()(logits(4, 5), logits(4, 5))
    with pytest.raises(ValueError, match='temperature must be .* got -1'):
        CWDLoss(temperature=-1)
    with pytest.raises(ValueError, match='loss_weight must be .* got -5'):
        CWDLoss(loss_weight=-5)


# ---------------------------------------------------------------------------
# Common
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('loss_fn', [DKDLoss(), KDLoss(), CWDLoss()])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs(loss_fn, dtype):
    zs, zt = logits(2, 6, 4, 4, seed=13), logits(2, 6, 4, 4, seed=14)
    target = torch.randint(0, 6, (2, 4, 4))
    s = zs.to(dtype).requires_grad_()
    with torch.autocast('cpu', dtype=dtype):
        loss = loss_fn(s, zt.to(dtype), target)
    loss.backward()
    assert loss.dtype == torch.float32 and s.grad.dtype == dtype
    ref = loss_fn(zs.to(dtype).float(), zt.to(dtype).float(), target)
    torch.testing.assert_close(loss, ref)


def test_registry_and_names():
    from mmpretrain.registry import MODELS as CLS_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    cases = [
        (dict(type='DKDLoss', alpha=1.0, beta=0.5, temperature=1.0),
         DKDLoss, 'loss_dkd'),
        (dict(type='KDLoss', temperature=4.0), KDLoss, 'loss_kd'),
        (dict(type='CWDLoss', temperature=1.0, loss_weight=5.0), CWDLoss,
         'loss_cwd'),
    ]
    for registry in (SEG_MODELS, CLS_MODELS):
        for cfg, cls, name in cases:
            loss_fn = registry.build(cfg)
            assert type(loss_fn) is cls and loss_fn.loss_name == name


def test_retain_graph_repeated_backward():
    zs = logits(4, 10, seed=15).float().requires_grad_()
    zt = logits(4, 10, seed=16).float()
    for loss_fn in (KDLoss(), DKDLoss()):
        zs.grad = None
        loss = loss_fn(zs, zt, torch.arange(4))
        grad, = torch.autograd.grad(loss, zs, retain_graph=True)
        for _ in range(3):
            loss.backward(retain_graph=True)
        torch.testing.assert_close(zs.grad, 3 * grad)


def cwd_relative_error(shape, scale, tau, seed=17):
    """Relative error of the fp32-input CWD loss and its gradient against
    float64 on the same (float32-rounded) logits."""
    zs, zt = logits(*shape, scale=scale, seed=seed), logits(
        *shape, scale=scale, seed=seed + 1)
    zs, zt = zs.float().double(), zt.float().double()
    loss, grad = run(CWDLoss(temperature=tau), zs.float(), zt.float())
    ref, ref_grad = run(CWDLoss(temperature=tau), zs, zt)
    assert loss.dtype == grad.dtype == torch.float32
    return (abs(float(loss) - float(ref)) / float(ref),
            float((grad.double() - ref_grad).abs().max() /
                  ref_grad.abs().max()))


@pytest.mark.parametrize('scale', [0.3, 3.0, 30.0])
@pytest.mark.parametrize('tau', [0.5, 1.0, 4.0])
def test_cwd_float32_accuracy(scale, tau):
    # Near-uniform maps at large tau have a small KL: float32
    # log-normalisers over H*W positions used to cost ~1e-5 of it.
    err, grad_err = cwd_relative_error((1, 19, 64, 128), scale, tau)
    assert err <= 1e-6 and grad_err <= 1e-5


@pytest.mark.slow
def test_cwd_float32_accuracy_full_map():
    # The case: 1x19x256x512 (the kernel path gave 2.5e-4 at T=1).
    for scale in (0.3, 3.0, 30.0):
        for tau in (0.5, 1.0, 2.0, 4.0):
            err, _ = cwd_relative_error((1, 19, 256, 512), scale, tau)
            assert err <= 1e-6, (scale, tau, err)
