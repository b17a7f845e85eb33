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
