# Copyright (c) mmgdkd contributors. All rights reserved.
"""Data tooling: a procedural data set in the Cityscapes layout.

The names are resolved lazily (PEP 562): ``import mmgdkd.datasets`` stays
light, and the generator loads OpenCV only when it is used.
"""
from typing import Any

__all__ = ['CLASS_NAMES', 'generate_cityscapes']


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import synthetic_cityscapes
        return getattr(synthetic_cityscapes, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
    return sorted(list(globals()) + __all__)
