# Copyright (c) mmgdkd contributors. All rights reserved.
"""tools/dist_train.sh: 2-process torchrun (gloo) DDP on CPU.

The two processes must train as one model: after one step, the weights are
those of SGD on the mean of the two processes' gradients, each computed on
its own half of the batch (BN statistics per process, SyncBN being turned
into BN without CUDA; running statistics from rank 0, which DDP
broadcasts and saves).
"""
import copy
import os.path as osp

import pytest
import torch

from helpers import (PSPNET_R18, run_dist_train, tiny_seg_overrides,
                     tiny_segmentor, write_config)

LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 0.0005  # MMSeg's 80k schedule


def _no_dropout_segmentor(norm: str) -> dict:
    model = tiny_segmentor(norm=norm)
    model['decode_head']['dropout_ratio'] = 0.0
    model['auxiliary_head']['dropout_ratio'] = 0.0
    return model


def _reference_step(cfg_path: str, init_ckpt: str) -> dict:
    """One SGD step on the averaged gradient of the two ranks' batches."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS, MODELS

    from mmgdkd.utils import replace_sync_bn
    cfg = Config.fromfile(cfg_path)
    replace_sync_bn(cfg.model)
    with DefaultScope.overwrite_default_scope('mmseg'):
        rank0 = MODELS.build(cfg.model)
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
    rank0.load_state_dict(torch.load(init_ckpt,
                                     weights_only=True)['state_dict'])
    rank1 = copy.deepcopy(rank0)
    grads = []
    # DefaultSampler without shuffle: rank r reads indices r, r + 2, ...
    for rank, model in ((0, rank0), (1, rank1)):
        model.train()
        data = model.data_preprocessor(
            pseudo_collate([dataset[rank], dataset[rank + 2]]), True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        grads.append(torch.autograd.grad(loss, list(rank0.parameters())
                                         if rank == 0 else
                                         list(rank1.parameters())))
    optimizer = torch.optim.SGD(rank0.parameters(), lr=LR, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)
    for param, g0, g1 in zip(rank0.parameters(), *grads):
        param.grad = (g0 + g1) / 2
    optimizer.step()
    return rank0.state_dict()


@pytest.mark.slow
def test_pspnet_r18_ddp_two_processes(cityscapes_root, tmp_path, repo_root,
                                      python_env, python_exe):
    if torch.cuda.is_available():
        pytest.skip('CPU/gloo path')
    from helpers import build_segmentor
    torch.manual_seed(0)
    init_ckpt = str(tmp_path / 'init.pth')
    torch.save({'state_dict': build_segmentor().state_dict()}, init_ckpt)
    settings = tiny_seg_overrides(cityscapes_root, max_iters=1,
                                  val_interval=1, batch_size=2)
    train_loader = settings['train_dataloader']
    train_loader['sampler'] = dict(type='DefaultSampler', shuffle=False)
    # no random flip: both sides must see the same pixels
    train_loader['dataset']['pipeline'] = [
        p for p in train_loader['dataset']['pipeline']
        if p['type'] != 'RandomFlip'
    ]
    # SyncBN on purpose: the CPU distributed path must turn it into BN.
    config = write_config(
        str(tmp_path / 'pspnet_tiny.py'), PSPNET_R18,
        model=_no_dropout_segmentor('SyncBN'), load_from=init_ckpt,
        **settings)
    work_dir = str(tmp_path / 'ddp')
    proc = run_dist_train(repo_root, config, work_dir, python_env,
                          python_exe)
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert 'SyncBN replaced by BN' in log
    assert 'mIoU' in log

    trained = torch.load(osp.join(work_dir, 'iter_1.pth'),
                         weights_only=True)['state_dict']
    expected = _reference_step(config, init_ckpt)
    initial = torch.load(init_ckpt, weights_only=True)['state_dict']
    assert set(trained) == set(expected)
    moved = 0
    for key, value in expected.items():
        torch.testing.assert_close(trained[key], value, rtol=1e-4,
                                   atol=1e-6, msg=key)
        moved += not torch.equal(value, initial[key])
    assert moved > len(expected) // 2  # the step changed the model
