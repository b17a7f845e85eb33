# Copyright (c) mmgdkd contributors. All rights reserved.
"""The pure-torch path is sync-free: every loss, with ignore pixels, traces
into one graph under ``torch.compile(fullgraph=True)`` (a ``.item()``,
``bool()`` of a tensor, ``nonzero`` or ``torch.tensor(list)`` of data would
break it) and matches eager loss and gradient. ``aot_eager`` traces forward
and backward like inductor without its minutes of C++ code generation; one
inductor run is kept (slow)."""
import pytest
import torch

import mmgdkd  # noqa: F401  (registers the losses)
from mmgdkd.models.losses import CWDLoss, DKDLoss, GDKDLoss, KDLoss

LOSSES = {
    'gdkd-topk': lambda: GDKDLoss(k=2, w0=0.7, w2=2.0, temperature=2.0),
    'gdkd-topk3': lambda: GDKDLoss(k=3, strategy='topk3', kl_type='both'),
    'gdkd-adaptive': lambda: GDKDLoss(strategy='adaptive', kl_type='reverse'),
    'dkd': lambda: DKDLoss(alpha=1.0, beta=2.0, temperature=2.0),
    'kd': lambda: KDLoss(temperature=3.0),
    'cwd': lambda: CWDLoss(temperature=2.0),
}


@pytest.fixture(autouse=True)
def torch_path(monkeypatch):
    monkeypatch.setenv('MMGDKD_NATIVE', '0')
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    zs = torch.randn(2, 7, 4, 5, generator=g) * 3
    zt = torch.randn(2, 7, 4, 5, generator=g) * 3
    target = torch.randint(0, 7, (2, 4, 5), generator=g)
    target[0, 0] = 255  # ignore pixels
    target[1, :, 2] = 255
    return zs, zt, target


def loss_and_grad(fn, zs, zt, target):
    zs = zs.clone().requires_grad_()
    loss = fn(zs, zt, target)
    loss.backward()
    return loss.detach(), zs.grad


def check_compiled(name, backend):
    zs, zt, target = inputs()
    eager_fn, compiled_fn = LOSSES[name](), LOSSES[name]()
    compiled = torch.compile(compiled_fn, fullgraph=True, backend=backend)
    loss, grad = loss_and_grad(compiled, zs, zt, target)
    ref, ref_grad = loss_and_grad(eager_fn, zs, zt, target)
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-8)
    for key, value in getattr(eager_fn, 'last_components', {}).items():
        torch.testing.assert_close(compiled_fn.last_components[key], value,
                                   rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('name', list(LOSSES))
def test_fullgraph_matches_eager(name):
    check_compiled(name, 'aot_eager')


@pytest.mark.slow
def test_fullgraph_inductor():
    check_compiled('gdkd-topk3', 'inductor')


def test_bad_labels_make_the_compiled_loss_nan():
    # Values cannot be checked inside a graph without a host sync: an
    # out-of-range label gives NaN instead of a silent answer (eagerly on
    # CPU it is a ValueError).
    zs, zt, target = inputs()
    target[1, 0, 0] = 9
    compiled = torch.compile(DKDLoss(), fullgraph=True, backend='aot_eager')
    assert torch.isnan(compiled(zs, zt, target))
    with pytest.raises(ValueError, match=r'in \[0, 7\) .*got 9'):
        DKDLoss()(zs, zt, target)
