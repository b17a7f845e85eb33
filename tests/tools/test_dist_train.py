# Copyright (c) mmgdkd contributors. All rights reserved.
"""tools/dist_train.sh: 2-process torchrun (gloo) DDP on CPU."""
import os.path as osp

import pytest
import torch

from helpers import (PSPNET_R18, run_dist_train, tiny_seg_overrides,
                      tiny_segmentor, write_config)


@pytest.mark.slow
def test_pspnet_r18_ddp_two_processes(cityscapes_root, tmp_path, repo_root,
                                      python_env, python_exe):
    if torch.cuda.is_available():
        pytest.skip('CPU/gloo path')
    # SyncBN on purpose: the CPU distributed path must turn it into BN.
    config = write_config(
        str(tmp_path / 'pspnet_tiny.py'), PSPNET_R18,
        model=tiny_segmentor(norm='SyncBN'),
        **tiny_seg_overrides(cityscapes_root, max_iters=2, val_interval=2,
                             batch_size=2))
    work_dir = str(tmp_path / 'ddp')
    proc = run_dist_train(repo_root, config, work_dir, python_env,
                          python_exe)
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert 'SyncBN replaced by BN' in log
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth'))
    assert 'mIoU' in log
