# Copyright (c) mmgdkd contributors. All rights reserved.
"""The environment shims of mmgdkd.compat and the host stack they enable."""
import collections
import os
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmgdkd import compat


class _Arbitrary:
    """A class a malicious checkpoint could make torch.load instantiate."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_apply_is_idempotent():
    compat.apply()
    compat.apply()
    assert compat._applied


def test_mmcv_ops_stub_only_without_compiled_ops():
    import mmcv  # noqa: F401
    ext = sys.modules.get('mmcv._ext')
    if isinstance(ext, compat._MissingMMCVOps):  # mmcv-lite
        with pytest.raises(RuntimeError, match="mmcv op 'roi_align'"):
            ext.roi_align()
    else:  # full mmcv: the real extension is untouched
        assert ext is None or not isinstance(ext, compat._MissingMMCVOps)
    # importing mmseg's model zoo needs mmcv.ops, stubbed or real
    import mmseg.models  # noqa: F401
    assert not compat.stub_missing_mmcv_ops()  # second call: nothing to do


def test_torchvision_imports_and_op_fails_clearly():
    import torchvision
    assert hasattr(torchvision, 'transforms')
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.],
                          [20., 20., 30., 30.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    if compat._torchvision_schema_lib is None:
        # torchvision's own ops loaded: the shim stayed out of the way
        assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]
        return
    # only the schemas are declared: calling the op names the cause
    with pytest.raises(RuntimeError, match="Couldn't load custom C\\+\\+ "
                       'ops'):
        torchvision.ops.nms(boxes, scores, 0.5)
    assert 'torchvision without its C++ ops' in compat.IMPORT_NEEDED_BY


def test_runner_imports():
    from mmengine.runner import Runner  # noqa: F401  (imports torchvision)


def test_cpu_distributed_launcher_wrapped():
    import mmengine.dist.utils as dist_utils
    if torch.cuda.is_available():
        pytest.skip('CUDA build: the launcher is left alone')
    assert getattr(dist_utils._init_dist_pytorch, '_mmgdkd_cpu', False)


def test_pkg_resources_available_for_mmseg_config_paths():
    # `mmseg::` resolution goes through pkg_resources (setuptools < 82)
    cfg = Config.fromfile(osp.join(
        osp.dirname(osp.dirname(osp.abspath(__file__))), 'tests', 'data',
        'mmseg_base.py'))
    assert cfg.model.backbone.depth == 18


def _mmengine_like_checkpoint() -> dict:
    buffer = HistoryBuffer()
    buffer.update(1.5)
    buffer.update(np.float64(2.0))
    return {
        'meta': {'iter': 2, 'seed': 0, 'np_scalar': np.float32(0.5),
                 'ints': np.arange(3, dtype=np.int64)},
        'state_dict': collections.OrderedDict(w=torch.ones(2)),
        'message_hub': {'log_scalars': {'train/loss': buffer},
                        'runtime_info': {'iter': 2}},
    }


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = str(tmp_path / 'ok.pth')
    torch.save(_mmengine_like_checkpoint(), path)
    # torch's own safe loader accepts it once the types are allow-listed
    loaded = torch.load(path, weights_only=True)
    assert isinstance(loaded['message_hub']['log_scalars']['train/loss'],
                      HistoryBuffer)
    # and so does mmengine's loading path
    loaded = _load_checkpoint(path, map_location='cpu')
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))
    assert loaded['meta']['np_scalar'] == np.float32(0.5)


def test_arbitrary_pickled_object_is_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    checkpoint = _mmengine_like_checkpoint()
    checkpoint['meta']['payload'] = _Arbitrary()
    torch.save(checkpoint, path)
    with pytest.raises(compat.UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(path, map_location='cpu')
    message = str(info.value)
    assert 'evil.pth' in message
    assert 'weights_only=False' in message  # says how to load it if trusted
    # the refusal is a pickle error, so code catching those still works
    assert isinstance(info.value, pickle.UnpicklingError)


def test_missing_local_checkpoint_names_the_path(tmp_path):
    missing = osp.join(str(tmp_path), 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        CheckpointLoader.load_checkpoint(missing)
