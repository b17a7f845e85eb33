# Copyright (c) mmgdkd contributors. All rights reserved.
"""tools/dist_train.sh: 2-process torchrun (gloo) DDP on CPU."""
import os.path as osp
import socket
import subprocess

import pytest
import torch

from conftest import (PSPNET_R18, tiny_seg_overrides, tiny_segmentor,
                      write_config)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_dist_train(repo_root, config, work_dir, env, python_exe, nproc=2,
                   extra=()):
    env = dict(env, PORT=str(free_port()), PYTHON=python_exe,
               OMP_NUM_THREADS='1')
    cmd = ['bash', osp.join(repo_root, 'tools', 'dist_train.sh'), config,
           str(nproc), '--work-dir', work_dir, *extra]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


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
