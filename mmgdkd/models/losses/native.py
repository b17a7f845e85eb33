# Copyright (c) mmgdkd contributors. All rights reserved.
"""Binding of the fused CPU kernel ``csrc/decoupled_kl.cpp``.

The kernel is optional: it is built with the package when a C++ compiler is
there (see ``setup.py``), and ``MMGDKD_NATIVE=0`` in the environment turns
it off; the variable is read at every call, so it can be flipped at run
time. :func:`native_status` says whether it runs and, if not, why.

This file imports nothing from the OpenMMLab stack.
"""
import enum
import os
import warnings
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

_NATIVE_VERSION = 2  # must match kVersion in csrc/decoupled_kl.cpp


class Mode(enum.IntEnum):
    """How the kernel forms the partition; the kernel exports the same list
    (``MODES``) and a build whose list differs is refused."""
    WHOLE = 0  # one group (KD)
    LABEL = 1  # {label} / rest (DKD)
    TOPK = 2  # teacher top-k / rest (GDKD)
    BOTTOMK = 3  # teacher bottom-k / rest (GDKD ablation 'worst')
    TOPK3 = 4  # top-1 / top-2..k / rest (GDKD3)
    GROUP_IDS = 5  # explicit group ids (adaptive k, custom partitions)


class _Loaded(NamedTuple):
    module: Optional[object]
    reason: str


_loaded: Optional[_Loaded] = None


def _load() -> _Loaded:
    """Import the built module once; the reason if it cannot be used."""
    try:
        from . import _decoupled_kl_cpu as module
    except ImportError as exc:
        return _Loaded(None, f'not built ({exc}); reinstall with a C++17 '
                       'compiler: `pip install -e .`')
    version = getattr(module, 'VERSION', None)
    modes = tuple(getattr(module, 'MODES', ()))
    if version != _NATIVE_VERSION or modes != tuple(
            m.name.lower() for m in Mode):
        reason = (f'stale build (version {version}, modes {modes}; expected '
                  f'{_NATIVE_VERSION}, {tuple(m.name.lower() for m in Mode)})'
                  '; rebuild with `pip install -e .`')
        warnings.warn(f'mmgdkd: the decoupled-KL kernel is a {reason}. '
                      'Using the pure-torch path.')
        return _Loaded(None, reason)
    return _Loaded(module, 'built')


def native_module():
    """The kernel module, or ``None`` if not built, stale or disabled by
    ``MMGDKD_NATIVE=0`` (read now, not at import)."""
    global _loaded
    if os.environ.get('MMGDKD_NATIVE', '1') == '0':
        return None
    if _loaded is None:
        _loaded = _load()
    return _loaded.module


def native_available() -> bool:
    """Whether the fused CPU kernel is built and enabled right now."""
    return native_module() is not None


def native_status() -> str:
    """One line: which backend the losses use, and why."""
    if native_available():
        return ('native CPU kernel (float32/fp16/bf16 logits on CPU; CUDA '
                'and float64 use the pure-torch path)')
    if os.environ.get('MMGDKD_NATIVE', '1') == '0':
        reason = 'disabled by MMGDKD_NATIVE=0'
    else:
        reason = _loaded.reason
    return f'pure torch (native CPU kernel: {reason})'


def _ptr(t: Optional[Tensor]) -> int:
    return 0 if t is None else t.data_ptr()


def native_forward(student: Tensor, teacher: Tensor, valid: Optional[Tensor],
                   mode: Mode, k: int, aux: Optional[Tensor],
                   weights: Tuple[Optional[float], ...], w0: float,
                   temperature: float, shares: Tuple[float, float],
                   loss_weight: float,
                   need_grad: bool) -> Tuple[List[float], Optional[Tensor]]:
    """Row sums ``[high, D_0, ..]`` over the valid rows (without ``T^2`` or
    the mean) and the gradient of the loss w.r.t. ``student`` (or ``None``).

    Args:
        student, teacher (Tensor): ``(N, C, L)`` float32 CPU logits.
        valid (Tensor, optional): ``(N, L)`` bool.
        aux (Tensor, optional): ``(N, L)`` int64 labels (``LABEL``) or
            ``(N, C, L)`` uint8 group ids (``GROUP_IDS``).
        shares: ``(forward, reverse)`` shares of the within-group KL.
    """
    module = native_module()
    n, c, length = student.shape
    n_valid = n * length if valid is None else int(valid.sum())
    if n_valid == 0:
        grad = torch.zeros_like(student) if need_grad else None
        return [0.0] * (1 + len(weights)), grad
    labels = aux if mode == Mode.LABEL else None
    ids = aux if mode == Mode.GROUP_IDS else None
    if length == 1 and n > 1:
        # Rows are vectorised along L: a (N, C) batch becomes (1, C, N).
        student = student.reshape(n, c).t().unsqueeze(0)
        teacher = teacher.reshape(n, c).t().unsqueeze(0)
        valid = None if valid is None else valid.reshape(1, n)
        labels = None if labels is None else labels.reshape(1, n)
        ids = None if ids is None else ids.reshape(n, c).t().unsqueeze(0)
    student, teacher = student.contiguous(), teacher.contiguous()
    labels = None if labels is None else labels.contiguous()
    ids = None if ids is None else ids.contiguous()
    valid = None if valid is None else valid.to(torch.uint8).contiguous()
    grad = torch.empty_like(student) if need_grad else None
    sums = module.forward(
        _ptr(student), _ptr(teacher), _ptr(grad), _ptr(valid), _ptr(labels),
        _ptr(ids), *student.shape, int(mode), k, len(weights),
        1.0 / temperature, w0, shares[0], shares[1],
        [w or 0.0 for w in weights],
        [0.0 if w is None else 1.0 for w in weights],
        loss_weight * temperature / n_valid, torch.get_num_threads())
    sums = [s / n_valid for s in sums]
    if grad is not None and length == 1 and n > 1:
        grad = grad.view(c, n).t().unsqueeze(2)
    return sums, grad
