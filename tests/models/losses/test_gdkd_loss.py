# Copyright (c) mmgdkd contributors. All rights reserved.
"""GDKD: the fused kernel against a straightforward reference, the
identities of docs/losses.md, edge cases, validation, autocast and
registration."""
import pytest
import torch
import torch.nn.functional as F

import mmgdkd  # noqa: F401  (registers the losses)
from mmgdkd.models.losses import (GDKDLoss, adaptive_k, decoupled_kl,
                                  topk_masks)
from mmgdkd.models.losses.partitions import topk_indices

NINF = float('-inf')


# ---------------------------------------------------------------------------
# Reference: rows (N*H*W, C), boolean masks, log_softmax pairs, autograd.
# Exact masking with -inf (the published code subtracts 1000 instead); the
# masked entries are zeroed before any product so autograd sees no 0 * inf.
# ---------------------------------------------------------------------------
def to_rows(x):
    """(N, C) or (N, C, H, W) -> (R, C)."""
    return x if x.dim() == 2 else x.permute(0, 2, 3, 1).reshape(
        -1, x.shape[1])


def ref_parts(zs, zt, masks, T, kl_type='forward'):
    """Per-row high and within-group divergences (without T^2)."""
    ls, lt = F.log_softmax(zs / T, 1), F.log_softmax(zt / T, 1)
    lbs = torch.stack(
        [torch.logsumexp(ls.masked_fill(~m, NINF), 1) for m in masks], 1)
    lbt = torch.stack(
        [torch.logsumexp(lt.masked_fill(~m, NINF), 1) for m in masks], 1)
    high = (lbt.exp() * (lbt - lbs)).sum(1)
    lows = []
    for m in masks:
        lps = F.log_softmax((zs / T).masked_fill(~m, NINF), 1)
        lpt = F.log_softmax((zt / T).masked_fill(~m, NINF), 1)
        lps, lpt = lps.masked_fill(~m, 0), lpt.masked_fill(~m, 0)
        fwd = (lpt.exp() * (lpt - lps) * m).sum(1)
        rev = (lps.exp() * (lps - lpt) * m).sum(1)
        lows.append(dict(forward=fwd, reverse=rev, both=(fwd + rev) / 2)[
            kl_type])
    return high, lows


def ref_masks(zt, strategy, k, T=1.0, ratio=2.0, max_k=None):
    """Teacher partition of rows (R, C) as a list of bool masks."""
    rows, c = zt.shape

    def members(idx):
        return torch.zeros_like(zt, dtype=torch.bool).scatter_(1, idx, True)

    if strategy == 'adaptive':
        ks = []
        for p in F.softmax(zt / T, 1):
            p = p.sort().values
            kk = 1
            for j in range(c):  # 0-based; authors: topk = C - idx[0]
                if p[j] / p[:j + 1].mean() >= ratio:
                    kk = c - j
                    break
            ks.append(min(kk, c - 1 if max_k is None else max_k))
        top = torch.stack([
            members(zt[i:i + 1].topk(kk, 1).indices)[0]
            for i, kk in enumerate(ks)
        ])
        return [top, ~top]
    idx = zt.topk(k, 1, largest=strategy != 'worst').indices
    if strategy == 'topk3':
        top1, top = members(idx[:, :1]), members(idx)
        return [top1, top & ~top1, ~top]
    return [members(idx), ~members(idx)]


def ref_gdkd(zs, zt, target=None, k=3, w0=1.0, w1=1.0, w2=2.0, T=1.0,
             kl_type='forward', strategy='topk', ignore_index=255,
             loss_weight=1.0, ratio=2.0, max_k=None):
    """GDKDLoss by the book; returns (loss, components)."""
    if zs.dim() == 4 and zt.shape[2:] != zs.shape[2:]:
        zt = F.interpolate(zt, zs.shape[2:], mode='bilinear',
                           align_corners=False)
    rs, rt = to_rows(zs), to_rows(zt)
    valid = torch.ones(rs.shape[0], dtype=torch.bool)
    if target is not None:
        if zs.dim() == 4 and target.shape[1:] != zs.shape[2:]:
            target = F.interpolate(target[:, None].float(), zs.shape[2:],
                                   mode='nearest')[:, 0].long()
        valid = target.reshape(-1) != ignore_index
    masks = ref_masks(rt, strategy, k, T, ratio, max_k)
    high, lows = ref_parts(rs, rt, masks, T, kl_type)
    if strategy == 'topk3':
        lows = lows[1:]  # no within-top-1 term
    comps = [(x * valid).sum() / valid.sum() * T**2 for x in [high] + lows]
    loss = loss_weight * (w0 * comps[0] + w1 * comps[1] + w2 * comps[2])
    return loss, dict(high=comps[0], low_top=comps[1], low_other=comps[2])


def run(loss_fn, zs, zt, target=None):
    """Loss and student gradient."""
    zs = zs.detach().clone().requires_grad_()
    loss = loss_fn(zs, zt, target)
    grad, = torch.autograd.grad(loss, zs)
    return loss, grad


def logits(*shape, scale=3.0, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype) * scale


SHAPES = [(6, 10), (2, 7, 3, 4)]


# ---------------------------------------------------------------------------
# Parity with the reference
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('strategy,k', [('topk', 1), ('topk', 3),
                                        ('topk3', 3), ('adaptive', 3),
                                        ('worst', 2)])
@pytest.mark.parametrize('kl_type', ['forward', 'reverse', 'both'])
@pytest.mark.parametrize('T', [1.0, 4.0])
def test_parity_float64(shape, strategy, k, kl_type, T):
    zs, zt = logits(*shape, seed=1), logits(*shape, seed=2)
    cfg = dict(k=k, w0=0.7, w1=1.3, w2=2.1, kl_type=kl_type, strategy=strategy,
               loss_weight=0.9, ratio=1.5)
    loss_fn = GDKDLoss(temperature=T, **cfg)
    loss, grad = run(loss_fn, zs, zt)
    ref, ref_grad = run(lambda s, t, y: ref_gdkd(s, t, T=T, **cfg)[0], zs,
                        zt)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('kl_type', ['forward', 'reverse', 'both'])
def test_parity_float32(shape, kl_type):
    zs, zt = logits(*shape, seed=3), logits(*shape, seed=4)
    loss, grad = run(GDKDLoss(k=3, kl_type=kl_type), zs.float(), zt.float())
    ref, ref_grad = run(
        lambda s, t, y: ref_gdkd(s, t, k=3, kl_type=kl_type)[0], zs, zt)
    assert loss.dtype == grad.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(
        grad.double(), ref_grad, rtol=1e-5, atol=1e-6 * ref_grad.abs().max())


@pytest.mark.parametrize('teacher_hw', [(6, 8), (2, 3), (3, 8)])
@pytest.mark.parametrize('target_hw', [(12, 16), (3, 4), (2, 2)])
def test_resize_and_ignore(teacher_hw, target_hw):
    zs, zt = logits(2, 5, 3, 4, seed=5), logits(2, 5, *teacher_hw, seed=6)
    g = torch.Generator().manual_seed(7)
    target = torch.randint(0, 5, (2, *target_hw), generator=g)
    target[0, :target_hw[0] // 2] = 255
    loss_fn = GDKDLoss(k=2, w1=1.5, temperature=2.0)
    loss, grad = run(loss_fn, zs, zt, target)
    ref, ref_grad = run(
        lambda s, t, y: ref_gdkd(s, t, y, k=2, w1=1.5, T=2.0)[0], zs, zt,
        target)
    torch.testing.assert_close(loss, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-12)
    # (N, 1, H, W) targets, as MMSeg stacks them, are the same.
    torch.testing.assert_close(loss_fn(zs, zt, target[:, None]), loss)


def test_last_components_identity():
    zs, zt = logits(2, 9, 4, 4, seed=8), logits(2, 9, 4, 4, seed=9)
    target = torch.randint(0, 9, (2, 4, 4))
    target[1, 0] = 255
    for strategy in ('topk', 'topk3', 'adaptive', 'worst'):
        loss_fn = GDKDLoss(k=4, w0=0.5, w1=1.5, w2=3.0, temperature=2.0,
                           strategy=strategy, loss_weight=0.8)
        loss = loss_fn(zs, zt, target)
        c = loss_fn.last_components
        assert set(c) == {'high', 'low_top', 'low_other'}
        assert all(not v.requires_grad and v.dim() == 0 for v in c.values())
        torch.testing.assert_close(
            loss, 0.8 * (0.5 * c['high'] + 1.5 * c['low_top'] +
                         3.0 * c['low_other']))
        _, ref = ref_gdkd(zs, zt, target, k=4, w0=0.5, w1=1.5, w2=3.0, T=2.0,
                          strategy=strategy, loss_weight=0.8)
        for key, value in ref.items():
            torch.testing.assert_close(c[key], value.detach())
    c = GDKDLoss()(zs.float(), zt.float())
    assert c.dtype == torch.float32


# ---------------------------------------------------------------------------
# Identities of docs/losses.md (GDKD vs KD and DKD)
# ---------------------------------------------------------------------------
def test_chain_rule_recovers_kd():
    zs, zt = logits(32, 12, seed=10), logits(32, 12, seed=11)
    T = 2.0
    masks = ref_masks(zt, 'topk', 4)
    high, (low_top, low_other) = ref_parts(zs, zt, masks, T)
    q = F.softmax(zt / T, 1)
    kl = F.kl_div(F.log_softmax(zs / T, 1), q, reduction='none').sum(1)
    bt1, bt2 = (q * masks[0]).sum(1), (q * masks[1]).sum(1)
    torch.testing.assert_close(high + bt1 * low_top + bt2 * low_other, kl)
    # The kernel with per-row weights w0=1, w1=b_t(U1), w2=b_t(U2), one row
    # at a time, equals KD's kernel value.
    for i in range(4):
        s, t = zs[i:i + 1, :, None], zt[i:i + 1, :, None]
        mask = masks[0][i:i + 1, :, None]
        gdkd = decoupled_kl(s, t, groups=[mask], w0=1.0,
                            weights=[float(bt1[i]), float(bt2[i])],
                            temperature=T).loss
        kd = decoupled_kl(s, t, temperature=T).loss
        torch.testing.assert_close(gdkd, kd, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(kd, kl[i] * T**2)


def test_k1_equals_dkd_where_teacher_is_right():
    from mmgdkd.models.losses import DKDLoss
    zs, zt = logits(64, 10, seed=12), logits(64, 10, seed=13)
    argmax = zt.argmax(1)
    wrong = (argmax + 1) % 10
    target = torch.where(torch.arange(64) % 2 == 0, argmax, wrong)
    alpha, beta, T = 1.0, 8.0, 4.0
    gdkd = GDKDLoss(k=1, w0=alpha, w1=5.0, w2=beta, temperature=T)
    dkd = DKDLoss(alpha=alpha, beta=beta, temperature=T)
    right = torch.arange(64) % 2 == 0
    # Rows where label == teacher argmax: equal; low_top == 0 exactly.
    torch.testing.assert_close(gdkd(zs[right], zt[right]),
                               dkd(zs[right], zt[right], target[right]))
    assert gdkd.last_components['low_top'] == 0
    # Where the teacher is wrong they differ.
    assert not torch.allclose(gdkd(zs[~right], zt[~right]),
                              dkd(zs[~right], zt[~right], target[~right]))


@pytest.mark.parametrize('kl_type', ['forward', 'reverse', 'both'])
@pytest.mark.parametrize('groups', [0, 1, 2])
def test_gradcheck(kl_type, groups):
    zs = logits(2, 6, 3, seed=14).requires_grad_()
    zt = logits(2, 6, 3, seed=15)
    valid = torch.tensor([[True, False, True], [True, True, False]])
    top, top1 = topk_masks(zt, 3, with_top1=True)
    masks, weights = {
        0: (None, [1.3]),
        1: ([top], [0.7, 2.0]),
        2: ([top1, top - top1], [None, 0.7, 2.0]),
    }[groups]

    def fn(s):
        return decoupled_kl(s, zt, groups=masks, w0=0.6, weights=weights,
                            temperature=1.7, kl_type=kl_type, valid=valid,
                            loss_weight=1.1).loss

    assert torch.autograd.gradcheck(fn, (zs, ))


def test_closed_form_gradient():
    """Spec 3.3 written out: T [w0 p^_j (b_s - b_t) + w_g (p^_j - q^_j)]."""
    zs, zt = logits(5, 8, seed=16), logits(5, 8, seed=17)
    T, w0, w1, w2 = 3.0, 0.5, 1.5, 4.0
    _, grad = run(GDKDLoss(k=3, w0=w0, w1=w1, w2=w2, temperature=T), zs, zt)
    p, q = F.softmax(zs / T, 1), F.softmax(zt / T, 1)
    expected = torch.zeros_like(zs)
    for m, w in zip(ref_masks(zt, 'topk', 3), (w1, w2)):
        bs, bt = (p * m).sum(1, True), (q * m).sum(1, True)
        term = T * (w0 * p / bs * (bs - bt) + w * (p / bs - q / bt))
        expected += term * m
    torch.testing.assert_close(grad, expected / zs.shape[0])


def test_zero_at_equality_and_partition_invariant_to_t():
    z = logits(2, 19, 4, 4, seed=18)
    for kl_type in ('forward', 'reverse', 'both'):
        loss, grad = run(GDKDLoss(kl_type=kl_type, temperature=3.0), z, z)
        assert abs(float(loss)) < 1e-12 and grad.abs().max() < 1e-12
    t = to_rows(z)[:, :, None]
    mask, _ = topk_masks(t, 3)
    for T in (0.5, 4.0, 100.0):
        torch.testing.assert_close(topk_masks(t / T, 3)[0], mask)


# ---------------------------------------------------------------------------
# Edge cases
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('kl_type', ['forward', 'reverse'])
def test_huge_logits_finite(kl_type):
    zs, zt = logits(4, 19, 3, 3, scale=1e4, seed=19), logits(
        4, 19, 3, 3, scale=1e4, seed=20)
    loss_fn = GDKDLoss(k=3, kl_type=kl_type)
    loss, grad = run(loss_fn, zs.float(), zt.float())
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    ref, ref_grad = run(lambda s, t, y: ref_gdkd(s, t, kl_type=kl_type)[0],
                        zs, zt)
    torch.testing.assert_close(loss.double(), ref, rtol=1e-4, atol=0)
    torch.testing.assert_close(
        grad.double(), ref_grad, rtol=0, atol=1e-4 * ref_grad.abs().max())


def test_confident_student_group_underflow():
    zt = logits(6, 10, seed=21).float()
    zs = logits(6, 10, seed=22).float()
    # The student puts ~all mass on a non-top-k class: its top-group mass
    # is ~e^-300, far below fp32's range.
    bottom = zt.argmin(1)
    zs[torch.arange(6), bottom] = 300.0
    loss_fn = GDKDLoss(k=3, temperature=1.0)
    loss, grad = run(loss_fn, zs, zt)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    ref, ref_grad = run(lambda s, t, y: ref_gdkd(s, t)[0], zs.double(),
                        zt.double())
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-5,
                               atol=1e-6)
    assert loss_fn.last_components['high'] > 100


def test_all_ignored_is_zero_with_graph():
    zs = logits(2, 5, 3, 3, seed=23).requires_grad_()
    target = torch.full((2, 3, 3), 255)
    loss_fn = GDKDLoss()
    loss = loss_fn(zs, logits(2, 5, 3, 3, seed=24), target)
    assert loss.item() == 0 and loss.requires_grad
    loss.backward()
    assert torch.equal(zs.grad, torch.zeros_like(zs))
    assert all(v == 0 for v in loss_fn.last_components.values())


def test_ties_give_exactly_k():
    for zt in (torch.zeros(2, 19, 5),  # all equal
               torch.randint(-3, 3, (2, 19, 5)).float(),  # many ties
               logits(2, 19, 50, seed=25).half().float() * 0):
        top, top1 = topk_masks(zt, 3, with_top1=True)
        assert (top.sum(1) == 3).all() and (top1.sum(1) == 1).all()
        assert ((top - top1) >= 0).all()
        bottom, _ = topk_masks(zt, 4, largest=False)
        assert (bottom.sum(1) == 4).all()
    zs = logits(2, 19, 2, 2, seed=26)
    loss = GDKDLoss(strategy='topk3', k=3)(zs, torch.zeros(2, 19, 2, 2))
    assert torch.isfinite(loss)


def test_topk_mask_matches_torch_topk():
    for shape, k in (((3, 19, 40), 3), ((16, 1000, 1), 5), ((4, 7, 6), 6)):
        zt = logits(*shape, seed=27).float()
        ref = torch.zeros_like(zt).scatter_(1, zt.topk(k, 1).indices, 1.0)
        assert torch.equal(topk_masks(zt, k)[0], ref)


def test_topk_indices_order_and_ties():
    # k <= 4: knock-out rounds, best first, tied classes lowest index first
    # (a stable sort's order, as the native kernel takes them); -0.0 ties
    # +0.0. Larger k: torch.topk (exactly k members).
    zt = torch.randint(-2, 3, (2, 19, 7)).float()
    zt[0, :, 0] = torch.tensor([0.0, -0.0] * 9 + [0.0])
    for k in (1, 3, 4):
        for largest in (True, False):
            order = zt.sort(dim=1, descending=largest, stable=True).indices
            assert torch.equal(topk_indices(zt, k, largest), order[:, :k])
    assert torch.equal(topk_indices(zt.double(), 3), zt.double().sort(
        dim=1, descending=True, stable=True).indices[:, :3])
    top = torch.zeros_like(zt).scatter_(1, topk_indices(zt, 6), 1.0)
    assert (top.sum(1) == 6).all()


def test_adaptive_k_convention():
    # Ascending probabilities; p_(j) / mean(p_(0..j)) first reaches 2 at
    # 0-based j = 6 (0.1 vs mean 0.0433), so k = C - j = 10 - 6 = 4.
    p = torch.tensor([0.02, 0.03, 0.03, 0.04, 0.04, 0.04, 0.1, 0.2, 0.2, 0.3])
    z = p.log()[torch.randperm(10)].view(1, 10, 1)
    k, _ = adaptive_k(z, 1.0, 2.0, 9)
    assert k.item() == 4
    assert adaptive_k(z, 1.0, 2.0, 3)[0].item() == 3  # capped
    flat = torch.zeros(1, 10, 1)  # no jump anywhere: k = 1
    assert adaptive_k(flat, 1.0, 2.0, 9)[0].item() == 1
    # A ratio <= 1 jumps at j = 0: k = C, capped at max_k.
    assert adaptive_k(z, 1.0, 1.0, 9)[0].item() == 9
    loss_fn = GDKDLoss(strategy='adaptive', ratio=2.0)
    zs = logits(1, 10, seed=28)
    loss = loss_fn(zs, z[..., 0].double())
    ref, _ = ref_gdkd(zs, z[..., 0].double(), strategy='adaptive')
    torch.testing.assert_close(loss, ref)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs,match', [
    (dict(k=0), 'k must be an int >= 1, got 0'),
    (dict(k=2.5), 'got 2.5'),
    (dict(k=1, strategy='topk3'), 'k must be an int >= 2, got 1'),
    (dict(temperature=0), 'temperature must be .* got 0'),
    (dict(temperature=-1.0), 'got -1.0'),
    (dict(w0=-0.1), 'w0 must be .* got -0.1'),
    (dict(w1=-1), 'w1 must be .* got -1'),
    (dict(w2=float('nan')), 'w2 must be .* got nan'),
    (dict(loss_weight=-2.0), 'loss_weight .* got -2.0'),
    (dict(kl_type='js'), "kl_type must be one of .* got 'js'"),
    (dict(strategy='best'), "strategy must be one of .* got 'best'"),
    (dict(ratio=0), 'ratio must be .* got 0'),
    (dict(max_k=0), 'max_k must be .* got 0'),
])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GDKDLoss(**kwargs)


def test_forward_errors():
    zs, zt = logits(2, 5, 3, 3), logits(2, 5, 3, 3)
    with pytest.raises(ValueError, match=r'k=5 must be < .* C=5'):
        GDKDLoss(k=5)(zs, zt)
    with pytest.raises(ValueError, match=r'max_k=7 must be < .* C=5'):
        GDKDLoss(strategy='adaptive', max_k=7)(zs, zt)
    with pytest.raises(ValueError, match=r'got shape \(2, 5, 9\)'):
        GDKDLoss()(zs.reshape(2, 5, 9), zt)
    with pytest.raises(ValueError, match=r'\(3, 5, 3, 3\) and student .* '
                       r'\(2, 5, 3, 3\)'):
        GDKDLoss(k=2)(zs, logits(3, 5, 3, 3))
    with pytest.raises(ValueError, match=r'\(2, 6, 3, 3\)'):
        GDKDLoss(k=2)(zs, logits(2, 6, 3, 3))
    with pytest.raises(ValueError, match=r'\(2, 5\)'):
        GDKDLoss(k=2)(zs, zt[:, :, 0, 0])
    with pytest.raises(ValueError, match=r'shape \(2, 4\)'):
        GDKDLoss(k=2)(zs, zt, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r'got torch.float32'):
        GDKDLoss(k=2)(zs, zt, torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r'shape \(3,\)'):
        GDKDLoss(k=2)(zs[..., 0, 0], zt[..., 0, 0], torch.zeros(3).long())
    for bad in (float('nan'), float('inf'), -float('inf')):
        t = zt.clone()
        t[1, 2, 0, 1] = bad
        with pytest.raises(ValueError, match='teacher logits must be finite'):
            GDKDLoss(k=2)(zs, t)
    # Non-finite student logits are not rejected (the AMP grad scaler must
    # see the inf); the loss is then non-finite.
    s = zs.clone()
    s[0, 0, 0, 0] = float('inf')
    assert not torch.isfinite(GDKDLoss(k=2)(s, zt))


# ---------------------------------------------------------------------------
# Mixed precision, determinism, registry, functional API
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_autocast(dtype):
    g = torch.Generator().manual_seed(29)
    x = torch.randn(2, 8, 6, 6, generator=g)
    conv_s, conv_t = torch.nn.Conv2d(8, 19, 1), torch.nn.Conv2d(8, 19, 1)
    loss_fn = GDKDLoss(k=3, temperature=2.0)
    with torch.autocast('cpu', dtype=dtype):
        zs, zt = conv_s(x) * 4, conv_t(x).detach() * 4
        assert zs.dtype == dtype
        loss = loss_fn(zs, zt)
    assert loss.dtype == torch.float32
    grad, = torch.autograd.grad(loss, zs, retain_graph=True)
    assert grad.dtype == dtype
    zs32 = zs.detach().float().requires_grad_()
    loss32 = loss_fn(zs32, zt.float())
    grad32, = torch.autograd.grad(loss32, zs32)
    torch.testing.assert_close(loss, loss32, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.float(), grad32, rtol=1e-2, atol=1e-4)
    loss.backward()  # through the conv, in autocast's dtypes
    assert conv_s.weight.grad is not None


def test_deterministic():
    zs, zt = logits(2, 19, 8, 8, seed=30).float(), logits(
        2, 19, 8, 8, seed=31).float()
    target = torch.randint(0, 19, (2, 16, 16))
    for strategy in ('topk', 'adaptive', 'topk3'):
        loss_fn = GDKDLoss(strategy=strategy, kl_type='both')
        a, b = run(loss_fn, zs, zt, target), run(loss_fn, zs, zt, target)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_registry():
    from mmpretrain.registry import MODELS as CLS_MODELS
    from mmseg.registry import MODELS as SEG_MODELS
    cfg = dict(type='GDKDLoss', k=5, w0=0.5, w1=1.0, w2=1.0, temperature=1.0)
    for registry in (SEG_MODELS, CLS_MODELS):
        loss_fn = registry.build(cfg)
        assert isinstance(loss_fn, GDKDLoss) and loss_fn.k == 5
        assert loss_fn.loss_name == 'loss_gdkd'


def test_group_ids_equal_masks():
    zs, zt = logits(3, 8, 4, seed=32), logits(3, 8, 4, seed=33)
    top, top1 = topk_masks(zt, 3, with_top1=True)
    ids = (2 - top - top1).long()  # 0 = top-1, 1 = top-2..3, 2 = rest
    kwargs = dict(w0=0.5, weights=[None, 1.0, 2.0], temperature=2.0)
    a = decoupled_kl(zs, zt, groups=ids, **kwargs)
    b = decoupled_kl(zs, zt, groups=[top1, top - top1], **kwargs)
    torch.testing.assert_close(a, b)
    # A student that does not need grad takes the loss-only path.
    assert not a.loss.requires_grad
