# Copyright (c) mmgdkd contributors. All rights reserved.
"""Registration into the host libraries' own registries.

mmgdkd components are registered into MMSegmentation's and MMPretrain's
``MODELS`` so that a config says ``type='GDKDLoss'`` exactly as it would for a
host loss, under either ``default_scope``. A host that is not installed is
skipped, so the segmentation half works without MMPretrain and vice versa.
"""
import importlib
from typing import List, Type

from mmengine.registry import Registry

_HOSTS = ('mmseg', 'mmpretrain')


def host_model_registries() -> List[Registry]:
    """The ``MODELS`` registries of the installed host libraries."""
    registries = []
    for host in _HOSTS:
        try:
            module = importlib.import_module(f'{host}.registry')
        except ImportError:
            continue
        registries.append(module.MODELS)
    return registries


def register_model(cls: Type) -> Type:
    """Class decorator: register ``cls`` into every host ``MODELS``."""
    for registry in host_model_registries():
        registry.register_module(module=cls)
    return cls
