# Copyright (c) mmgdkd contributors. All rights reserved.
"""The fused CPU kernel (csrc/decoupled_kl.cpp) against the pure-torch path
and the float64 reference of test_gdkd_loss: every partition mode, KL type,
temperature, block tail, ignore mask, the exact (group-shift) fallback,
ties, non-finite students, threads, autocast and the build/version guard."""
import os
import warnings

import pytest
import torch
from test_gdkd_loss import logits, ref_gdkd, run

import mmgdkd  # noqa: F401  (registers the losses)
from mmgdkd.models.losses import (DKDLoss, GDKDLoss, KDLoss, LabelGroup,
                                  TopK, decoupled, decoupled_kl, native)

pytestmark = pytest.mark.skipif(
    os.environ.get('MMGDKD_NATIVE', '1') == '0',
    reason='native kernel disabled (MMGDKD_NATIVE=0)')


@pytest.fixture
def torch_path(monkeypatch):
    """Run the losses on the pure-torch path."""
    monkeypatch.setenv('MMGDKD_NATIVE', '0')


def both_paths(loss_fn, zs, zt, target=None, monkeypatch=None):
    """(loss, grad) by the kernel and by the torch path, float32."""
    native = run(loss_fn, zs.float(), zt.float(), target)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('MMGDKD_NATIVE', '0')
        reference = run(loss_fn, zs.float(), zt.float(), target)
    return native, reference


def assert_same(native, reference, rtol=2e-5, atol=1e-6):
    (loss, grad), (ref_loss, ref_grad) = native, reference
    torch.testing.assert_close(loss.double(), ref_loss.double(), rtol=rtol,
                               atol=atol)
    scale = ref_grad.abs().max().item()
    torch.testing.assert_close(grad.double(), ref_grad.double(), rtol=rtol,
                               atol=atol * max(scale, 1e-3) * 100)


def test_native_is_built():
    # `make` / `pip install -e .` build the kernel; a failed build installs
    # anyway (pure-torch fallback), so it is caught here.
    assert native.native_available(), (
        'the native loss kernel is not built: install a C++ compiler and '
        're-run `pip install -e .`, or set MMGDKD_NATIVE=0 to test the '
        'pure-torch path only')


# (N, C, H, W): L = 15 is one partial block, L = 72 four full blocks and a
# partial one; (N, C) runs transposed to (1, C, N).
SHAPES = [(2, 7, 3, 5), (2, 19, 8, 9), (37, 10), (5, 1000)]


@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('strategy,k', [('topk', 1), ('topk', 3),
                                        ('topk3', 3), ('worst', 2),
                                        ('adaptive', 3)])
@pytest.mark.parametrize('kl_type', ['forward', 'reverse', 'both'])
@pytest.mark.parametrize('T', [1.0, 4.0])
def test_gdkd_matches_reference(shape, strategy, k, kl_type, T):
    zs, zt = logits(*shape, seed=1), logits(*shape, seed=2)
    target = None
    if len(shape) == 4:
        target = torch.randint(0, shape[1], (shape[0], ) + shape[2:],
                               generator=torch.Generator().manual_seed(3))
        target[:, 0] = 255
    loss_fn = GDKDLoss(k=k, w0=0.7, w1=1.3, w2=2.0, temperature=T,
                       kl_type=kl_type, strategy=strategy)
    native, torch_ref = both_paths(loss_fn, zs, zt, target)
    assert_same(native, torch_ref)
    ref_loss, ref_grad = run(
        lambda s, t, y: ref_gdkd(s, t, y, k, 0.7, 1.3, 2.0, T, kl_type,
                                 strategy)[0], zs, zt, target)
    assert_same(native, (ref_loss, ref_grad))


@pytest.mark.parametrize('shape', SHAPES[:3])
@pytest.mark.parametrize('T', [1.0, 4.0])
def test_kd_and_dkd_match_torch_path(shape, T):
    zs, zt = logits(*shape, seed=4), logits(*shape, seed=5)
    spatial = shape[2:] if len(shape) == 4 else ()
    target = torch.randint(0, shape[1], (shape[0], ) + spatial,
                           generator=torch.Generator().manual_seed(6))
    target.view(-1)[::4] = 255
    for loss_fn in (KDLoss(temperature=T), DKDLoss(temperature=T, beta=2.0)):
        assert_same(*both_paths(loss_fn, zs, zt, target))


def test_functional_partitions_and_masks_agree():
    zs, zt = logits(3, 11, 40, seed=7).float(), logits(3, 11, 40,
                                                       seed=8).float()
    labels = torch.randint(0, 11, (3, 40))
    top = torch.zeros_like(zt).scatter_(1, zt.topk(4, 1).indices, 1.0)
    one_hot = torch.zeros_like(zt).scatter_(1, labels[:, None], 1.0)
    for spec, masks, weights in ((TopK(4), [top], [1.0, 2.0]),
                                 (LabelGroup(labels), [one_hot],
                                  [None, 3.0])):
        kwargs = dict(w0=0.5, weights=weights, temperature=2.0)
        a = decoupled_kl(zs, zt, groups=spec, **kwargs)
        b = decoupled_kl(zs, zt, groups=masks, **kwargs)
        torch.testing.assert_close(a, b)


def test_exact_fallback_when_a_group_underflows():
    # The student puts ~300 nats on one class of the rest group: with the
    # row-max shift that group's other terms and the whole top group
    # underflow, so those blocks are redone with group-wise shifts.
    zs, zt = logits(2, 19, 6, 6, seed=9), logits(2, 19, 6, 6, seed=10)
    rest = zt.topk(4, 1, largest=False).indices[:, :1]
    zs.scatter_(1, rest, 300.0)
    loss_fn = GDKDLoss(k=3, w2=2.0, kl_type='both')
    native, torch_ref = both_paths(loss_fn, zs, zt)
    assert torch.isfinite(native[0]) and torch.isfinite(native[1]).all()
    assert_same(native, torch_ref, rtol=1e-4)
    ref = run(lambda s, t, y: ref_gdkd(s, t, kl_type='both')[0], zs, zt)
    assert_same(native, ref, rtol=1e-4)


def test_extreme_logits_stay_finite():
    zs = logits(2, 19, 4, 4, scale=1e4, seed=11)
    zt = logits(2, 19, 4, 4, scale=1e4, seed=12)
    native, torch_ref = both_paths(GDKDLoss(k=3), zs, zt)
    assert torch.isfinite(native[0]) and torch.isfinite(native[1]).all()
    assert_same(native, torch_ref, rtol=1e-4)


def test_ties_keep_exactly_k_lowest_index_first():
    # An fp16-like teacher with many ties: the kernel takes the tied classes
    # of lowest index, as a stable descending sort does.
    zt = torch.randint(-2, 3, (2, 19, 3, 3)).float()
    zs = logits(2, 19, 3, 3, seed=13).float()
    order = zt.double().sort(dim=1, descending=True, stable=True).indices
    top = torch.zeros_like(zt, dtype=torch.double).scatter_(
        1, order[:, :3], 1.0)
    loss, _ = run(GDKDLoss(k=3, w0=1.0, w1=1.0, w2=2.0), zs, zt)
    ref = decoupled_kl(zs.double().flatten(2), zt.double().flatten(2),
                       groups=[top.flatten(2)], w0=1.0,
                       weights=[1.0, 2.0]).loss
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-7)
    # Three groups: top-1 is the first maximal class.
    first = torch.zeros_like(top).scatter_(1, order[:, :1], 1.0)
    loss3, _ = run(GDKDLoss(k=3, strategy='topk3'), zs, zt)
    ref3 = decoupled_kl(zs.double().flatten(2), zt.double().flatten(2),
                        groups=[first.flatten(2), (top - first).flatten(2)],
                        w0=1.0, weights=[None, 1.0, 2.0]).loss
    torch.testing.assert_close(loss3.double(), ref3, rtol=1e-5, atol=1e-7)


def test_non_finite_student_gives_nan_unless_ignored():
    zs = logits(1, 5, 4, 4, seed=14).float()
    zt = logits(1, 5, 4, 4, seed=15).float()
    zs[0, 2, 1, 1] = float('nan')
    loss, grad = run(GDKDLoss(k=2), zs, zt)
    assert torch.isnan(loss)
    assert torch.isnan(grad[0, :, 1, 1]).all()
    assert torch.isfinite(grad[0, :, 0, 0]).all()
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 1, 1] = 255
    loss, grad = run(GDKDLoss(k=2), zs, zt, target)
    assert torch.isfinite(loss)


def test_threads_agree_and_repeat_bitwise():
    zs, zt = logits(4, 19, 32, 32, seed=16).float(), logits(
        4, 19, 32, 32, seed=17).float()
    loss_fn = GDKDLoss(k=3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(loss_fn, zs, zt)
        torch.set_num_threads(2)
        two, again = run(loss_fn, zs, zt), run(loss_fn, zs, zt)
    finally:
        torch.set_num_threads(threads)
    assert_same(one, two)
    assert torch.equal(two[0], again[0]) and torch.equal(two[1], again[1])


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_low_precision_inputs_use_the_kernel_in_fp32(dtype):
    zs = logits(2, 19, 8, 8, seed=18).to(dtype)
    zt = logits(2, 19, 8, 8, seed=19).to(dtype)
    loss, grad = run(GDKDLoss(k=3), zs, zt)
    assert loss.dtype == torch.float32 and grad.dtype == dtype
    ref, ref_grad = run(GDKDLoss(k=3), zs.float(), zt.float())
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(grad.float(), ref_grad, rtol=1e-2, atol=1e-5)


def test_stale_or_disabled_build_falls_back(monkeypatch):
    module = native.native_module()
    monkeypatch.setattr(module, 'VERSION', native._NATIVE_VERSION + 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert native._load().module is None
    assert any('stale' in str(w.message) for w in caught)
    monkeypatch.setattr(module, 'VERSION', native._NATIVE_VERSION)
    monkeypatch.setattr(module, 'MODES', ('whole', 'label'))
    assert 'stale' in native._load().reason
    monkeypatch.undo()
    assert native._load().module is module
    # MMGDKD_NATIVE is read at call time, not at import.
    zs, zt = logits(2, 5, 8, seed=30).float(), logits(2, 5, 8, seed=31)
    calls = []
    monkeypatch.setattr(decoupled, 'native_forward',
                        lambda *args: calls.append(args))
    monkeypatch.setenv('MMGDKD_NATIVE', '0')
    assert 'disabled by MMGDKD_NATIVE=0' in native.native_status()
    decoupled_kl(zs, zt.float())
    assert not calls and not native.native_available()
    monkeypatch.delenv('MMGDKD_NATIVE')
    assert native.native_available()
    assert native.native_status().startswith('native CPU kernel')


def test_kernel_rejects_bad_arguments():
    s = torch.zeros(1, 4, 16)
    with pytest.raises(ValueError, match='bad arguments'):
        native.native_module().forward(
            s.data_ptr(), s.data_ptr(), 0, 0, 0, 0, 1, 4, 16, 2, 4, 2, 1.0,
            1.0, 1.0, 0.0, [1.0, 1.0], [1.0, 1.0], 1.0, 1)


def test_torch_path_fixture_disables_kernel(torch_path):
    assert not native.native_available()


def test_calls_the_kernel_cannot_take_go_to_the_torch_path():
    zs, zt = logits(8, 10, 3, seed=20).float(), logits(8, 10, 3, seed=21)
    labels = torch.randint(0, 10, (8, 3))
    calls = [  # (student, teacher, partition, weights)
        (zs, zt.float(), TopK(3, largest=False, split_top1=True),
         [None, 1.0, 2.0]),  # bottom-1 / bottom-2..k
        (zs, zt, None, [1.0]),  # float64 teacher
        (zs, zt.float(), LabelGroup(labels.int()), [None, 2.0]),  # int32
    ]
    for student, teacher, partition, weights in calls:
        kwargs = dict(groups=partition, w0=0.5, weights=weights)
        kernel = decoupled_kl(student, teacher, **kwargs)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv('MMGDKD_NATIVE', '0')
            reference = decoupled_kl(student, teacher.float(), **kwargs)
        for a, b in zip(kernel, reference):
            torch.testing.assert_close(a.float(), b, rtol=1e-5, atol=1e-6)


def test_large_common_offset_keeps_precision():
    # Logits around 1e4 (float32 spacing ~1e-3 there): the log group masses
    # must not be rounded to the precision of the logits. The reference is
    # float64 on the same float32-rounded logits.
    zs = (logits(2, 19, 4, 4, seed=22) + 1e4).float()
    zt = (logits(2, 19, 4, 4, seed=23) + 1e4).float()
    loss_fn, ref_fn = GDKDLoss(k=3), GDKDLoss(k=3)
    loss, grad = run(loss_fn, zs, zt)
    ref, ref_grad = run(ref_fn, zs.double(), zt.double())
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=0)
    for name, value in loss_fn.last_components.items():
        torch.testing.assert_close(value.double(),
                                   ref_fn.last_components[name], rtol=1e-5,
                                   atol=1e-7)
    assert_same((loss, grad), (ref, ref_grad))
