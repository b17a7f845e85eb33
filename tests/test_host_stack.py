# Copyright (c) mmgdkd contributors. All rights reserved.
"""The host libraries' own models build and train on CPU after import."""
import os.path as osp

import torch
from mmengine.optim import build_optim_wrapper

from mmgdkd.models.distillers.utils import load_model_cfg


def _train_step(model, data) -> dict:
    optim_wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)))
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    log_vars = model.train_step(data, optim_wrapper)
    changed = any(not torch.equal(b, p.detach())
                  for b, p in zip(before, model.parameters()))
    assert changed, 'the optimizer step changed no parameter'
    return log_vars


def test_mmseg_pspnet_r18_trains_one_step():
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmengine.structures import PixelData
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = load_model_cfg(
        dict(cfg_path='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-'
             '512x1024.py', pretrained=None,
             data_preprocessor=dict(size=(64, 128))))
    model = MODELS.build(cfg)
    assert type(model).__name__ == 'EncoderDecoder'
    assert model.backbone.depth == 18
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(
            data=torch.randint(0, 19, (1, 64, 128), dtype=torch.long))
        sample.set_metainfo(dict(img_shape=(64, 128), ori_shape=(64, 128),
                                 pad_shape=(64, 128)))
        samples.append(sample)
    data = dict(
        inputs=[torch.randint(0, 255, (3, 64, 128), dtype=torch.uint8)
                for _ in range(2)],
        data_samples=samples)
    log_vars = _train_step(model, data)
    assert torch.isfinite(log_vars['loss'])
    assert 'decode.loss_ce' in log_vars and 'aux.loss_ce' in log_vars


def test_mmpretrain_resnet18_trains_one_step():
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = load_model_cfg('mmpretrain::resnet/resnet18_8xb32_in1k.py')
    assert cfg.data_preprocessor.num_classes == 1000  # moved in from top
    model = MODELS.build(cfg)
    assert type(model).__name__ == 'ImageClassifier'
    data = dict(
        inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
                for _ in range(2)],
        data_samples=[DataSample().set_gt_label(i) for i in (3, 7)])
    log_vars = _train_step(model, data)
    assert torch.isfinite(log_vars['loss'])
