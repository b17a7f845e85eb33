# Copyright (c) mmgdkd contributors. All rights reserved.
"""An mmengine Runner trains, checkpoints, resumes and validates an MMSeg
model on tiny Cityscapes-format data, with safe checkpoint loading."""
import os.path as osp

import pytest
import torch

from mmengine.runner import Runner

from mmgdkd.models.distillers.utils import load_config

from helpers import PSPNET_R18, tiny_seg_overrides, tiny_segmentor


def _runner(data_root, work_dir, max_iters, resume=False) -> Runner:
    cfg = load_config(PSPNET_R18)
    cfg.merge_from_dict(tiny_seg_overrides(data_root, max_iters=max_iters,
                                           val_interval=2))
    cfg.merge_from_dict(dict(model=tiny_segmentor()))
    cfg.work_dir = work_dir
    cfg.resume = resume
    return Runner.from_cfg(cfg)


@pytest.mark.slow
def test_train_checkpoint_resume_validate(cityscapes_root, tmp_path):
    work_dir = str(tmp_path / 'run')
    runner = _runner(cityscapes_root, work_dir, max_iters=2)
    runner.train()
    ckpt = osp.join(work_dir, 'iter_2.pth')
    assert osp.isfile(ckpt)
    # the checkpoint is loadable with torch's safe loader as it is
    state = torch.load(ckpt, map_location='cpu', weights_only=True)
    assert state['meta']['iter'] == 2
    assert 'message_hub' in state and 'optimizer' in state

    resumed = _runner(cityscapes_root, work_dir, max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    assert osp.isfile(osp.join(work_dir, 'iter_4.pth'))

    metrics = resumed.val_loop.run()
    assert set(metrics) >= {'mIoU', 'aAcc', 'mAcc'}
    assert 0 <= metrics['mIoU'] <= 100
