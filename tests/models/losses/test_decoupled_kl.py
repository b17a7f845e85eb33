# Copyright (c) mmgdkd contributors. All rights reserved.
"""decoupled_kl's contract on both backends: the same inputs refused with
the same ValueError, C++ errors as Python exceptions, a teacher that needs
grad, underflowed terms, and the named result."""
import os

import pytest
import torch

import mmgdkd  # noqa: F401  (registers the losses)
from mmgdkd.models.losses import (GDKDLoss, KDLoss, LabelGroup, TopK,
                                  decoupled_kl, native)

NATIVE = os.environ.get('MMGDKD_NATIVE', '1') != '0'
BACKENDS = ['native', 'torch'] if NATIVE else ['torch']


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """Each test once per backend (the kernel only where it is enabled)."""
    monkeypatch.setenv('MMGDKD_NATIVE', '1' if request.param == 'native'
                       else '0')
    return request.param


def randn(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * 3).to(dtype)


S, T = randn(2, 5, 16, seed=1), randn(2, 5, 16, seed=2)
LABELS = torch.randint(0, 5, (2, 16),
                       generator=torch.Generator().manual_seed(3))
TOP = torch.zeros(2, 5, 16).scatter_(1, T.topk(2, 1).indices, 1.0)


def bad_teacher(value):
    t = T.clone()
    t[1, 3, 7] = value
    return t


def meta(x):
    return torch.empty_like(x, device='meta')


# (kwargs of decoupled_kl, expected message); student/teacher default S, T.
BAD_INPUTS = [
    (dict(valid=torch.ones(2, 3, dtype=torch.bool)),
     r'valid must have shape \(2, 16\), got \(2, 3\)'),
    (dict(valid=torch.ones(2, 16)), 'valid must be a bool tensor'),
    (dict(groups=LabelGroup(LABELS[:, :3]), weights=[None, 1.0]),
     r'LabelGroup labels must have shape \(2, 16\)'),
    (dict(groups=LabelGroup(LABELS.float()), weights=[None, 1.0]),
     'LabelGroup labels must be an integer tensor'),
    (dict(groups=LabelGroup(LABELS.masked_fill(LABELS == 1, 7)),
          weights=[None, 1.0]), r'in \[0, 5\) .*got 7'),
    (dict(groups=LabelGroup(LABELS.masked_fill(LABELS == 1, -1)),
          weights=[None, 1.0]), r'in \[0, 5\) .*got -1'),
    (dict(student=S[:, :1], teacher=T[:, :1]), 'need C >= 2 classes, got C=1'),
    (dict(teacher=T[:, :, :8]), r'\(2, 5, 8\) and student .* differ'),
    (dict(student=S[0]), r'floating-point \(N, C, L\) tensor'),
    (dict(student=S.long()), 'got torch.int64'),
    (dict(teacher=meta(T)), 'teacher logits are on meta'),
    (dict(groups=TopK(0), weights=[1.0, 1.0]), r'TopK k=0 .*\[1, C=5\)'),
    (dict(groups=TopK(5), weights=[1.0, 1.0]), r'TopK k=5 .*\[1, C=5\)'),
    (dict(groups=TopK(2.5), weights=[1.0, 1.0]), 'TopK k=2.5'),
    (dict(groups=TopK(1, split_top1=True), weights=[None, 1.0, 1.0]),
     r'TopK k=1 .*\[2, C=5\)'),
    (dict(groups=TopK(2), weights=[1.0]), '2 groups but 1 weights'),
    (dict(groups=(TOP > 0).long() * 2, weights=[1.0, 1.0]),
     r'group ids must be in \[0, 2\), got 2'),
    (dict(groups=TOP.long()[:, :, :3], weights=[1.0, 1.0]),
     r'group ids must have shape \(2, 5, 16\)'),
    (dict(groups=[TOP * 0.5], weights=[1.0, 1.0]), 'only 0 and 1'),
    (dict(groups=[TOP, TOP], weights=[1.0, 1.0, 1.0]), 'disjoint'),
    (dict(groups=[torch.ones_like(TOP)], weights=[1.0, 1.0]),
     'group 1 is empty'),
    (dict(groups=torch.zeros(2, 5, 16, dtype=torch.long), weights=[1., 1.]),
     'group 1 is empty'),
    (dict(groups='topk', weights=[1.0]), 'groups must be None, TopK'),
    (dict(temperature=0.0), 'temperature must be > 0, got 0.0'),
    (dict(temperature=float('nan')), 'temperature must be a finite'),
    (dict(weights=[float('inf')]), r'weights\[0\] must be a finite number'),
    (dict(weights=[]), 'weights must be a non-empty sequence'),
    (dict(w0=None), 'w0 must be a finite number, got None'),
    (dict(loss_weight=float('nan')), 'loss_weight must be a finite'),
    (dict(kl_type='js'), "kl_type must be one of .* got 'js'"),
    (dict(teacher=bad_teacher(float('nan'))), 'teacher logits must be finite'),
    (dict(teacher=bad_teacher(float('inf'))), 'teacher logits must be finite'),
]


@pytest.mark.parametrize('kwargs,match', BAD_INPUTS)
def test_both_backends_refuse_the_same_inputs(backend, kwargs, match):
    kwargs = dict(kwargs)
    student = kwargs.pop('student', S).clone()
    if student.is_floating_point():
        student.requires_grad_()
    teacher = kwargs.pop('teacher', T)
    with pytest.raises(ValueError, match=match):
        decoupled_kl(student, teacher, **kwargs)


def test_good_inputs_agree_between_backends(monkeypatch):
    cases = [
        dict(groups=LabelGroup(LABELS.int()), weights=[None, 1.0]),
        dict(groups=TOP.bool().logical_not().to(torch.uint8),
             weights=[1.0, 2.0]),
        dict(groups=[TOP.bool()], weights=[1.0, 2.0], kl_type='both'),
        dict(groups=TopK(2, split_top1=True), weights=[None, 1.0, 2.0],
             valid=LABELS > 0),
    ]
    for kwargs in cases:
        results = []
        for flag in ('1', '0') if NATIVE else ('0', ):
            monkeypatch.setenv('MMGDKD_NATIVE', flag)
            s = S.clone().requires_grad_()
            result = decoupled_kl(s, T, w0=0.5, **kwargs)
            result.loss.backward()
            results.append((result, s.grad))
        for (a, ga), (b, gb) in zip(results, results[1:]):
            for x, y in zip(a, b):
                torch.testing.assert_close(x, y, rtol=2e-5, atol=1e-6)
            torch.testing.assert_close(ga, gb, rtol=2e-5, atol=1e-7)


def test_named_result(backend):
    result = decoupled_kl(S, T, groups=TopK(2, split_top1=True),
                          weights=(None, 1.5, 2.0), w0=0.5, loss_weight=0.8)
    assert result.within.shape == (3, ) and result.high.dim() == 0
    assert result.within[0] == 0  # singleton: no within term
    torch.testing.assert_close(
        result.loss,
        0.8 * (0.5 * result.high + 1.5 * result.within[1] +
               2.0 * result.within[2]))
    with pytest.raises(TypeError, match='positional'):
        decoupled_kl(S, T, None, 0.0, [1.0])


def test_teacher_that_requires_grad_gets_none(backend):
    teacher = T.clone().requires_grad_()
    # The student does not need grad: nothing to differentiate.
    loss = decoupled_kl(S, teacher, groups=TopK(2), weights=[1.0, 2.0]).loss
    assert not loss.requires_grad
    student = S.view(2, 5, 4, 4).clone().requires_grad_()
    loss = GDKDLoss(k=2)(student, teacher.view(2, 5, 4, 4))
    loss.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0
    # The loss module detaches the teacher too.
    loss = KDLoss()(S.view(2, 5, 4, 4), teacher.view(2, 5, 4, 4))
    assert not loss.requires_grad


@pytest.mark.skipif(not NATIVE, reason='native kernel disabled')
def test_kernel_errors_become_python_exceptions():
    module = native.native_module()
    buf = torch.zeros(64)
    ptr = buf.data_ptr()

    def call(n, c, threads):
        return module.forward(ptr, ptr, 0, 0, 0, 0, n, c, 1, 0, 0, 1, 1.0,
                              0.0, 1.0, 0.0, [1.0], [1.0], 1.0, threads)

    # Scratch buffers of 2**45 * 16 floats: std::bad_alloc, in the calling
    # thread and in a worker thread (which used to abort the interpreter).
    with pytest.raises(MemoryError, match='out of memory'):
        call(1, 2**45, 1)
    with pytest.raises(MemoryError, match='out of memory'):
        call(2, 2**45, 2)
    # Larger than a vector can be: std::length_error -> RuntimeError.
    with pytest.raises(RuntimeError, match='decoupled_kl kernel: '):
        call(2, 2**58, 2)
    # The module still works afterwards.
    s = S.clone().requires_grad_()
    decoupled_kl(s, T).loss.backward()
    assert torch.isfinite(s.grad).all()


def test_underflowed_terms_are_exactly_zero_and_bounded(backend):
    # Contrived rows: the rest group holds one class 60 nats below the best
    # (its sum ~1e-26 is kept on the fast path) and 996 classes ~110 nats
    # below, whose exp is below FLT_MIN: they count as exactly 0.
    c = 1000
    zt = torch.full((1, c, 16), -110.0)
    zt[:, :3] = torch.tensor([0.0, -1.0, -2.0])[:, None]
    zt[:, 3] = -60.0
    zs = zt + randn(1, c, 16, seed=4) * 0.01
    zs = zs.float().requires_grad_()
    result = decoupled_kl(zs, zt.float(), groups=TopK(3), weights=[1.0, 2.0],
                          w0=1.0, kl_type='both')
    result.loss.backward()
    ref_s = zs.detach().double().requires_grad_()
    ref = decoupled_kl(ref_s, zt.double(), groups=TopK(3),
                       weights=[1.0, 2.0], w0=1.0, kl_type='both')
    ref.loss.backward()
    # float32 cancellation bounds the error, not the dropped terms.
    scale = float(ref.loss)
    for a, b in zip(result, ref):
        torch.testing.assert_close(a.double(), b, rtol=1e-5,
                                   atol=1e-6 * scale)
    torch.testing.assert_close(zs.grad.double(), ref_s.grad, rtol=1e-5,
                               atol=1e-5 * float(ref_s.grad.abs().max()))
    if backend == 'native':
        # exp(-110) relative to the row max is below float32's smallest
        # normal: such terms are exactly 0 (they were ~1e-38 each).
        assert (zs.grad[:, 4:] == 0).all()


@pytest.mark.parametrize('weight', [1.0, 0.4])
def test_backward_hands_over_or_scales_the_saved_gradient(backend, weight):
    # The saved gradient is returned as is (weight 1) or scaled in place
    # when the graph is not kept: repeated and retained backwards must
    # still see the unscaled one.
    s = S.clone().requires_grad_()
    s64 = S.double().requires_grad_()
    ref = decoupled_kl(s64, T.double(), groups=TopK(2), weights=[1.0, 2.0],
                       w0=1.0)
    ref_grad, = torch.autograd.grad(ref.loss * weight, s64)
    loss = decoupled_kl(s, T, groups=TopK(2), weights=[1.0, 2.0],
                        w0=1.0).loss * weight
    for _ in range(3):
        loss.backward(retain_graph=True)
    torch.testing.assert_close(s.grad.double(), 3 * ref_grad, rtol=1e-5,
                               atol=1e-7)
    s.grad = None
    loss.backward()  # the last one frees the graph
    torch.testing.assert_close(s.grad.double(), ref_grad, rtol=1e-5,
                               atol=1e-7)



def spec_loss(zs, zt, masks, weights, w0, temperature):
    """docs/losses.md's decoupled KL of float64 ``(N, C, L)`` logits over
    bool ``masks`` (one per group), written with masked log-softmaxes."""
    ninf = float('-inf')
    zs, zt = zs / temperature, zt / temperature
    ls, lt = zs.log_softmax(1), zt.log_softmax(1)
    lbs = torch.stack([ls.masked_fill(~m, ninf).logsumexp(1) for m in masks],
                      1)
    lbt = torch.stack([lt.masked_fill(~m, ninf).logsumexp(1) for m in masks],
                      1)
    rows = w0 * (lbt.exp() * (lbt - lbs)).sum(1)
    for m, w in zip(masks, weights):
        lps = zs.masked_fill(~m, ninf).log_softmax(1).masked_fill(~m, 0)
        lpt = zt.masked_fill(~m, ninf).log_softmax(1).masked_fill(~m, 0)
        rows = rows + w * (lpt.exp() * (lpt - lps)).sum(1)
    return rows.mean() * temperature**2


@pytest.mark.parametrize('temperature', [1.0, 2.0])
@pytest.mark.parametrize('partition', ['topk', 'topk3', 'label'])
def test_rest_group_edges_match_the_spec_in_float64(backend, partition,
                                                    temperature):
    """Rows where the rest group's max ties the top group's, lies ~130 nats
    below it, or holds the student's only real mass, against the masked
    log-softmax formula (float64 references, fp32 and float64 inputs)."""
    c, length = 7, 6
    zt = randn(1, c, length, seed=11).double()
    zt[0, :, 0] = 0.0  # all tied: top-k = classes 0..k-1, rest max = theirs
    zt[0, :, 1] = torch.tensor([100.0, 99, 98, -30, -31, -32, -33])
    zt[0, :, 2] = torch.tensor([5.0, 5, 5, 5, 1, 0, -1])  # tie at the edge
    zs = randn(1, c, length, seed=12).double()
    zs[0, 5, 3] = 200.0  # the student's mass sits in the rest group
    zs[0, :, 4] = zt[0, :, 1]
    labels = torch.tensor([[0, 3, 6, 2, 1, 4]])
    order = zt.sort(dim=1, descending=True, stable=True).indices
    top = torch.zeros_like(zt, dtype=torch.bool).scatter_(1, order[:, :3],
                                                          True)
    first = torch.zeros_like(top).scatter_(1, order[:, :1], True)
    if partition == 'topk':
        groups, weights, masks = TopK(3), [1.0, 2.0], [top, ~top]
    elif partition == 'topk3':
        groups, weights = TopK(3, split_top1=True), [None, 1.0, 2.0]
        masks = [first, top & ~first, ~top]
    else:
        label = torch.zeros_like(top).scatter_(1, labels[:, None], True)
        groups, weights, masks = LabelGroup(labels), [None, 2.0], [label,
                                                                   ~label]
    ref_s = zs.clone().requires_grad_()
    ref = spec_loss(ref_s, zt, masks, [w or 0.0 for w in weights], 1.0,
                    temperature)
    ref.backward()
    for dtype in (torch.float32, torch.float64):
        s = zs.to(dtype).requires_grad_()
        result = decoupled_kl(s, zt.to(dtype), groups=groups,
                              weights=weights, w0=1.0,
                              temperature=temperature)
        result.loss.backward()
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        torch.testing.assert_close(result.loss.double(), ref.detach(),
                                   rtol=tol, atol=tol)
        torch.testing.assert_close(s.grad.double(), ref_s.grad, rtol=tol,
                                   atol=tol)
