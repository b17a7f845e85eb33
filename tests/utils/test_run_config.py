# Copyright (c) mmgdkd contributors. All rights reserved.
"""Run-time helpers of tools/train.py and tools/test.py."""
import pytest
import torch.distributed as dist

from mmgdkd.utils import teardown_distributed


def test_teardown_destroys_the_process_group(tmp_path):
    teardown_distributed()  # nothing initialised: a no-op
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store',
                            rank=0, world_size=1)
    try:
        assert dist.is_initialized()
        teardown_distributed()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_materialize_expands_every_teacher_of_an_ensemble():
    from mmengine.config import Config

    from mmgdkd.utils import materialize_distiller_cfg, replace_sync_bn
    psp = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
    deeplab = \
        'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'
    cfg = Config(dict(model=dict(
        type='SegDistiller', student=dict(cfg_path=psp),
        teacher=[dict(cfg_path=psp), deeplab])))
    materialize_distiller_cfg(cfg)
    assert [t.decode_head.type for t in cfg.model.teacher] == \
        ['PSPHead', 'ASPPHead']
    # SyncBN in student + 2 teachers: backbone, decode and aux head each
    assert replace_sync_bn(cfg.model) == 9


def test_default_work_dir_keeps_algorithms_apart(tmp_path):
    from mmgdkd.utils import default_work_dir
    for algo in ('gdkd', 'dkd', 'kd'):
        assert default_work_dir(
            f'configs/{algo}/pspnet_r101_r18_cityscapes.py') == \
            f'./work_dirs/{algo}/pspnet_r101_r18_cityscapes'
    # a config of the user's own, anywhere
    assert default_work_dir(str(tmp_path / 'my_gdkd.py')) == \
        './work_dirs/my_gdkd'


def test_library_leaves_warning_filters_alone():
    """Only the tools silence the known third-party deprecations."""
    import warnings

    import mmgdkd  # noqa: F401
    from mmgdkd.utils.known_warnings import (KNOWN_DEPRECATIONS,
                                             silence_known_deprecations)
    patterns = {message for _, message in KNOWN_DEPRECATIONS}
    with warnings.catch_warnings():
        assert not [f for f in warnings.filters
                    if f[1] is not None and f[1].pattern in patterns]
        warnings.simplefilter('error')
        with pytest.raises(UserWarning, match='pkg_resources'):
            warnings.warn('pkg_resources is deprecated as an API. See ...',
                          UserWarning)
        silence_known_deprecations()
        warnings.warn('pkg_resources is deprecated as an API. See ...',
                      UserWarning)  # silenced: no error under "error"
        with pytest.warns(UserWarning, match='something else'):
            warnings.warn('something else', UserWarning)
