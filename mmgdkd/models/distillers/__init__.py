# Copyright (c) mmgdkd contributors. All rights reserved.
from .base_distiller import BaseDistiller
from .seg_distiller import SegDistiller
from .utils import load_model_cfg, load_teacher_checkpoint

__all__ = [
    'BaseDistiller', 'SegDistiller', 'load_model_cfg',
    'load_teacher_checkpoint'
]

try:  # the classification half needs MMPretrain; mmgdkd works without it
    from .cls_distiller import ClsDistiller  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the install
    if getattr(_err, 'name', None) is None or \
            not _err.name.startswith('mmpretrain'):
        raise
else:
    __all__.append('ClsDistiller')
