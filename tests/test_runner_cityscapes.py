# Copyright (c) mmgdkd contributors. All rights reserved.
"""An mmengine Runner trains, checkpoints, resumes and validates an MMSeg
model on tiny Cityscapes-format data, with safe checkpoint loading."""
import os.path as osp

import numpy as np
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
    # the reported numbers are those of the model's own predictions,
    # recomputed here from a confusion count over the val images
    inter, union, correct, labelled = _confusion(resumed)
    with np.errstate(invalid='ignore', divide='ignore'):
        expected_miou = 100 * np.nanmean(inter / union)
    assert metrics['mIoU'] == pytest.approx(expected_miou, abs=0.006)
    assert expected_miou > 0  # not two zeros that agree vacuously
    assert metrics['aAcc'] == pytest.approx(100 * correct / labelled,
                                            abs=0.006)


def _confusion(runner: Runner, num_classes: int = 19, ignore: int = 255):
    inter = np.zeros(num_classes)
    union = np.zeros(num_classes)
    correct = labelled = 0
    runner.model.eval()
    for data in runner.val_dataloader:
        with torch.no_grad():
            outputs = runner.model.val_step(data)
        for sample in outputs:
            pred = sample.pred_sem_seg.data.squeeze(0).numpy()
            gt = sample.gt_sem_seg.data.squeeze(0).numpy()
            valid = gt != ignore
            correct += int(((pred == gt) & valid).sum())
            labelled += int(valid.sum())
            for c in range(num_classes):
                p, g = (pred == c) & valid, (gt == c) & valid
                inter[c] += (p & g).sum()
                union[c] += (p | g).sum()
    # classes absent from both count as NaN, as in MMSeg's IoUMetric
    union[union == 0] = np.nan
    return inter, union, correct, labelled
