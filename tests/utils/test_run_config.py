# Copyright (c) mmgdkd contributors. All rights reserved.
"""Run-time helpers of tools/train.py and tools/test.py."""
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
