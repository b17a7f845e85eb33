# Copyright (c) mmgdkd contributors. All rights reserved.
from .cwd_loss import CWDLoss
from .dist_loss import DISTLoss
from .dkd_loss import DKDLoss
from .functional import (DecoupledKL, LabelGroup, Mode, TopK,
                         adaptive_group_ids, adaptive_k, adaptive_topk_mask,
                         decoupled_kl, label_mask, native_available,
                         native_status, topk_masks)
from .gdkd_loss import GDKDLoss
from .kd_loss import KDLoss

__all__ = [
    'GDKDLoss', 'DKDLoss', 'KDLoss', 'CWDLoss', 'DISTLoss', 'decoupled_kl',
    'DecoupledKL', 'topk_masks', 'adaptive_k', 'adaptive_group_ids',
    'adaptive_topk_mask', 'label_mask', 'TopK', 'LabelGroup', 'Mode',
    'native_available', 'native_status'
]
