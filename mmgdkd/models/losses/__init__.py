# Copyright (c) mmgdkd contributors. All rights reserved.
from .cwd_loss import CWDLoss
from .dist_loss import DISTLoss
from .dkd_loss import DKDLoss
from .functional import (LabelGroup, TopK, adaptive_k, adaptive_topk_mask,
                         decoupled_kl, label_mask, native_available,
                         topk_masks)
from .gdkd_loss import GDKDLoss
from .kd_loss import KDLoss

__all__ = [
    'GDKDLoss', 'DKDLoss', 'KDLoss', 'CWDLoss', 'DISTLoss', 'decoupled_kl',
    'topk_masks', 'adaptive_k', 'adaptive_topk_mask', 'label_mask', 'TopK',
    'LabelGroup', 'native_available'
]
