# Copyright (c) mmgdkd contributors. All rights reserved.
"""Helpers shared by the tests (imported as ``helpers``; fixtures live in
``conftest.py``): tiny derived configs, model builders, config writers.

Nothing here downloads: models are built with ``pretrained=None`` and
teacher checkpoints are written by the tests.
"""
import os.path as osp
import socket
import subprocess

import mmgdkd  # noqa: F401  (compat shims before any host import)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PSPNET_R18 = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
TINY_CROP = (64, 128)


def tiny_seg_overrides(data_root: str, max_iters: int = 2,
                       val_interval: int = 2,
                       batch_size: int = 2,
                       schedule_iters: int = None) -> dict:
    """Settings that shrink an MMSeg Cityscapes config to a CPU smoke run.

    ``schedule_iters`` fixes the LR schedule's length independently of
    ``max_iters``, so a run stopped early and resumed follows the same
    schedule as an uninterrupted one.
    """
    train_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='PackSegInputs'),
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations'),
        dict(type='PackSegInputs'),
    ]

    def loader(split, pipeline, sampler):
        return dict(
            batch_size=batch_size if split == 'train' else 1,
            num_workers=0,
            persistent_workers=False,
            sampler=dict(type=sampler, shuffle=split == 'train'),
            dataset=dict(
                type='CityscapesDataset',
                data_root=data_root,
                data_prefix=dict(
                    img_path=f'leftImg8bit/{split}',
                    seg_map_path=f'gtFine/{split}'),
                pipeline=pipeline))

    return dict(
        crop_size=TINY_CROP,
        # the Runner hands the top-level one to the model: keep it in step
        data_preprocessor=dict(size=TINY_CROP),
        train_dataloader=loader('train', train_pipeline, 'InfiniteSampler'),
        val_dataloader=loader('val', test_pipeline, 'DefaultSampler'),
        test_dataloader=loader('val', test_pipeline, 'DefaultSampler'),
        train_cfg=dict(
            type='IterBasedTrainLoop',
            max_iters=max_iters,
            val_interval=val_interval),
        param_scheduler=[
            dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                 end=schedule_iters or max_iters, by_epoch=False)
        ],
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
            checkpoint=dict(type='CheckpointHook', by_epoch=False,
                            interval=val_interval)),
        log_processor=dict(by_epoch=False),
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'),
                     mp_cfg=dict(mp_start_method='fork',
                                 opencv_num_threads=0)),
        randomness=dict(seed=0),
    )


def tiny_segmentor(base: dict = None, norm: str = 'BN') -> dict:
    """Model overrides: no pretrained download, tiny crop, plain BN."""
    norm_cfg = dict(type=norm, requires_grad=True)
    return dict(
        pretrained=None,
        data_preprocessor=dict(size=TINY_CROP),
        backbone=dict(norm_cfg=norm_cfg),
        decode_head=dict(norm_cfg=norm_cfg),
        auxiliary_head=dict(norm_cfg=norm_cfg),
        **(base or {}))


def build_segmentor(**overrides):
    """A tiny PSPNet-R18 ``EncoderDecoder`` (built under the mmseg scope)."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    from mmgdkd.models.distillers.utils import load_model_cfg
    cfg = load_model_cfg(dict(cfg_path=PSPNET_R18, **tiny_segmentor()))
    cfg.update(overrides)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg)


def write_config(path: str, base: str, **overrides) -> str:
    """Write a config file that inherits ``base`` and sets ``overrides``."""
    lines = [f'_base_ = {base!r}']
    lines += [f'{key} = {value!r}' for key, value in overrides.items()]
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return path


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


def assert_distill_log_window(cfg) -> None:
    """The config averages every ``distill.*`` log key over the losses'
    window (docs/losses.md, "In the training log")."""
    import re
    pattern = (cfg.get('log_processor') or {}).get('mean_pattern')
    assert pattern, 'log_processor.mean_pattern is not set'
    for key in ('distill.decode.gdkd_high', 'distill.head.dkd_tckd',
                'distill.aux.loss_gdkd', 'student.decode.loss_ce', 'time'):
        assert re.search(pattern, key), key
    # the warm-up factor and the learning rate: their current values
    for key in ('distill.warmup_factor', 'lr'):
        assert not re.search(pattern, key), key


def untrained_teacher(model_cfg) -> dict:
    """A distiller config without teacher weights, on purpose.

    Configs whose teacher checkpoint is a download (the model-zoo teachers)
    are built in the tests with a random teacher; distillers refuse that
    unless ``allow_untrained_teacher`` is set.
    """
    model_cfg['teacher_ckpt'] = None
    model_cfg['allow_untrained_teacher'] = True
    return model_cfg


def make_cifar_folder(root: str, num_classes: int = 3) -> str:
    """A tiny CIFAR-like set in MMPretrain's ``CustomDataset`` layout.

    MMPretrain's ``CIFAR100`` verifies the md5 sums of the official pickles,
    so generated pickles cannot stand in for them. train: 4 images per
    class, test: 2, 32x32 PNG, one sub-folder per class (labels 0..2).
    """
    import mmcv
    import numpy as np
    rng = np.random.default_rng(0)
    for split, per_class in (('train', 4), ('test', 2)):
        for label in range(num_classes):
            for i in range(per_class):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                img[..., label] //= 2  # a little class signal
                mmcv.imwrite(img, osp.join(root, split, f'class{label}',
                                           f'{i}.png'))
    return root


def save_cifar_teacher(path: str) -> str:
    """A (random) ResNet32x4 CIFAR-100 teacher checkpoint at ``path``."""
    import torch
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmgdkd.models.distillers.utils import load_model_cfg
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        teacher = MODELS.build(load_model_cfg(osp.join(
            REPO_ROOT, 'configs', '_base_', 'models', 'cifar_resnet32x4.py')))
    torch.save({'state_dict': teacher.state_dict(), 'meta': {}}, path)
    return path


def tiny_cls_overrides(data_root: str, teacher_ckpt: str,
                       max_epochs: int = 2) -> dict:
    """Shrink a CIFAR distillation config: the data of
    :func:`make_cifar_folder`, ``max_epochs`` epochs, log every step."""

    def loader(split, pipeline, shuffle):
        return dict(
            batch_size=4,
            num_workers=0,
            persistent_workers=False,
            sampler=dict(type='DefaultSampler', shuffle=shuffle),
            dataset=dict(
                _delete_=True,
                type='CustomDataset',
                data_root=data_root,
                data_prefix=split,
                with_label=True,
                pipeline=[dict(type='LoadImageFromFile')] + pipeline))

    train_pipeline = [
        dict(type='RandomCrop', crop_size=32, padding=4),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackInputs'),
    ]
    test_pipeline = [dict(type='PackInputs')]
    return dict(
        model=dict(teacher_ckpt=teacher_ckpt),
        train_dataloader=loader('train', train_pipeline, True),
        val_dataloader=loader('test', test_pipeline, False),
        test_dataloader=loader('test', test_pipeline, False),
        train_cfg=dict(max_epochs=max_epochs, val_interval=1),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=0),
    )
