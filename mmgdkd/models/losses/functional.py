# Copyright (c) mmgdkd contributors. All rights reserved.
"""The functional API of the losses, in one namespace.

The code lives by concern: class partitions in ``partitions.py``, the
decoupled KL (validation, the pure-torch path, autograd) in
``decoupled.py`` and the binding of the native CPU kernel in
``native.py``.
"""
from .decoupled import KL_TYPES, DecoupledKL, decoupled_kl
from .native import Mode, native_available, native_status
from .partitions import (LabelGroup, TopK, adaptive_group_ids, adaptive_k,
                         adaptive_topk_mask, label_mask, to_compute_dtype,
                         topk_indices, topk_masks)

__all__ = [
    'KL_TYPES', 'DecoupledKL', 'decoupled_kl', 'Mode', 'native_available',
    'native_status', 'LabelGroup', 'TopK', 'adaptive_group_ids',
    'adaptive_k', 'adaptive_topk_mask', 'label_mask', 'to_compute_dtype',
    'topk_indices', 'topk_masks'
]
