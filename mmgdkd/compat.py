# Copyright (c) mmgdkd contributors. All rights reserved.
"""Shims that let the 2023-24 OpenMMLab releases run on a current PyTorch.

Each shim fixes one documented breakage (see ``docs``/README, "Compatibility")
and is a no-op where the environment does not need it: full mmcv with
compiled ops, a CUDA build of torch, a torchvision whose C++ library loads.
:func:`apply` runs every shim once; ``import mmgdkd`` and every tool call it
before MMSegmentation/MMPretrain are imported.

Nothing here edits site-packages or installs ``.pth`` files: the shims act on
the running process only.
"""
import importlib.machinery
import importlib.util
import os
import os.path as osp
import pickle
import sys
import types
from typing import Callable, List, Optional

import torch

_applied = False
#: The shims without which MMSeg/MMPretrain cannot even be imported here:
#: their own tools then need ``import mmgdkd`` first (a config's
#: ``custom_imports``); empty on a full-mmcv, matching-torchvision install.
IMPORT_NEEDED_BY: List[str] = []
# Keeps the torchvision op-schema library alive for the process lifetime.
_torchvision_schema_lib: Optional[torch.library.Library] = None


class UnsafeCheckpointError(pickle.UnpicklingError):
    """An intact checkpoint pickles objects outside the mmengine allow-list.
    """


# ---------------------------------------------------------------------------
# mmcv-lite: no compiled ops
# ---------------------------------------------------------------------------
class _MissingMMCVOps(types.ModuleType):
    """Stand-in for ``mmcv._ext`` when mmcv was installed without its ops.

    MMSegmentation imports ``mmcv.ops`` eagerly, which loads ``mmcv._ext``.
    Every model mmgdkd uses is pure PyTorch, so the import may succeed; an op
    that really needs the compiled library fails when it is *called*.
    """

    def __getattr__(self, name: str) -> Callable:
        if name.startswith('__'):
            raise AttributeError(name)

        def missing_op(*args, **kwargs):
            raise RuntimeError(
                f'mmcv op {name!r} needs mmcv built with its compiled ops '
                '(mmcv._ext); this environment has mmcv-lite. Install the '
                'full mmcv (`pip install mmcv==2.1.0` with a matching torch '
                'and CUDA) to use models that call it.')

        missing_op.__name__ = name
        return missing_op


def stub_missing_mmcv_ops() -> bool:
    """Register a stub ``mmcv._ext`` if mmcv has no compiled ops.

    Returns:
        bool: Whether the stub was installed.
    """
    if 'mmcv._ext' in sys.modules:
        return False
    if importlib.util.find_spec('mmcv') is None:
        return False
    if importlib.util.find_spec('mmcv._ext') is not None:
        return False
    stub = _MissingMMCVOps('mmcv._ext')
    # Environment reports probe the module's spec; no loader means "absent".
    stub.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
    sys.modules['mmcv._ext'] = stub
    return True


# ---------------------------------------------------------------------------
# torchvision whose C++ library does not load beside this torch
# ---------------------------------------------------------------------------
def _torchvision_library_path() -> Optional[str]:
    spec = importlib.util.find_spec('torchvision')
    if spec is None or not spec.submodule_search_locations:
        return None
    package_dir = list(spec.submodule_search_locations)[0]
    for name in sorted(os.listdir(package_dir)):
        if name.startswith('_C') and name.endswith(('.so', '.pyd')):
            return osp.join(package_dir, name)
    return None


def define_missing_torchvision_ops() -> bool:
    """Declare ``torchvision::nms``/``qnms`` if torchvision's library fails.

    PyPI's torchvision is linked against CUDA torch; beside the CPU wheel its
    ``_C`` library cannot load, and ``import torchvision`` then dies while
    registering fake kernels for ops that do not exist. mmengine's Runner
    imports torchvision, so every Runner would die. Declaring the two schemas
    (without kernels) lets the import finish; calling the ops still fails.

    Must run before torchvision is first imported.

    Returns:
        bool: Whether the schemas were declared.
    """
    global _torchvision_schema_lib
    if _torchvision_schema_lib is not None or 'torchvision' in sys.modules:
        return False
    library_path = _torchvision_library_path()
    if library_path is None:
        return False
    try:
        torch.ops.load_library(library_path)
        return False  # loads fine: torchvision defines its own ops
    except (OSError, RuntimeError):
        pass
    if hasattr(torch.ops.torchvision, 'nms'):
        return False
    lib = torch.library.Library('torchvision', 'DEF')
    lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    lib.define(
        'qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor')
    _torchvision_schema_lib = lib
    return True


# ---------------------------------------------------------------------------
# torch.load(weights_only=True) and mmengine checkpoints
# ---------------------------------------------------------------------------
def mmengine_checkpoint_safe_globals() -> List[Callable]:
    """The non-tensor types an mmengine checkpoint pickles.

    ``message_hub`` holds :class:`HistoryBuffer` objects backed by numpy
    arrays, and runtime info may hold numpy scalars. Nothing else is needed
    to resume; everything else stays refused.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer

    try:  # numpy >= 2 renamed the private module
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # pragma: no cover - depends on numpy
        from numpy.core.multiarray import _reconstruct, scalar

    dtype_types = [
        type(np.dtype(name)) for name in (
            'bool', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16',
            'uint32', 'uint64', 'float16', 'float32', 'float64')
    ]
    return [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar,
            *dtype_types]


def _history_buffer_state(self) -> dict:
    """Pickle a HistoryBuffer without its statistics functions.

    mmengine pickles ``_statistics_methods`` (a class-level registry of
    functions, rebuilt by ``__setstate__``) into every buffer, which makes
    checkpoints reference ``builtins.getattr``; allow-listing that would
    defeat safe loading, so the functions are left out instead.
    """
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def install_safe_checkpoint_loading() -> None:
    """Allow-list mmengine's checkpoint types and load local files safely.

    torch >= 2.6 loads with ``weights_only=True``; mmengine checkpoints carry
    a few mmengine/numpy objects that the safe unpickler must be told about.
    The local loader is replaced by one that passes ``weights_only=True``
    explicitly and tells a damaged file from an unsafe one
    (:func:`mmgdkd.engine.checkpoint.load_local_checkpoint`); remote loaders
    keep torch's default.
    """
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader

    from .engine.checkpoint import load_local_checkpoint

    torch.serialization.add_safe_globals(mmengine_checkpoint_safe_globals())
    HistoryBuffer.__getstate__ = _history_buffer_state
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)


# ---------------------------------------------------------------------------
# torch.distributed on machines without CUDA
# ---------------------------------------------------------------------------
def support_cpu_distributed() -> bool:
    """Let mmengine's ``pytorch`` launcher start on machines without CUDA.

    mmengine calls ``torch.cuda.set_device`` unconditionally (an
    AttributeError on CPU builds) and defaults to NCCL. Without CUDA, skip
    the device selection and use gloo. A no-op where CUDA is available.

    Returns:
        bool: Whether the launcher was wrapped.
    """
    if torch.cuda.is_available():
        return False
    import mmengine.dist.utils as dist_utils

    original = dist_utils._init_dist_pytorch
    if getattr(original, '_mmgdkd_cpu', False):
        return False

    def init_dist_pytorch_cpu(backend, init_backend='torch', **kwargs):
        if init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        torch.distributed.init_process_group(backend='gloo', **kwargs)

    init_dist_pytorch_cpu._mmgdkd_cpu = True
    dist_utils._init_dist_pytorch = init_dist_pytorch_cpu
    return True


def apply() -> None:
    """Apply every shim once (idempotent)."""
    global _applied
    if _applied:
        return
    if stub_missing_mmcv_ops():
        IMPORT_NEEDED_BY.append('mmcv-lite (no mmcv._ext)')
    if define_missing_torchvision_ops():
        IMPORT_NEEDED_BY.append('torchvision without its C++ ops')
    install_safe_checkpoint_loading()
    support_cpu_distributed()
    _applied = True
