# Shared settings of the `make demo` configs, under one key (`demo`) so that
# they can be a second `_base_` next to the real configs (mmengine forbids
# duplicate keys among bases). Only data, crop, schedule and model width
# differ from the real Cityscapes configs: 128x256 procedural street scenes
# (mmgdkd.datasets.synthetic_cityscapes), models from scratch (no download),
# plain BN, a few hundred CPU iterations.
# The repository the demo runs in (through the links of an mmgdkd::
# path too): data and the teacher are found from any working directory.
__repo_root = __import__('os.path').path.realpath(
    '{{ fileDirname }}/../..')
__img_scale = (256, 128)  # (w, h): the generated images' size
__crop_size = (128, 256)  # (h, w): the whole image
__data_root = f'{__repo_root}/data/synthetic_cityscapes/'
__norm_cfg = dict(type='BN', requires_grad=True)
__teacher_iters = 400

__train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=__img_scale,
        ratio_range=(1.0, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=__crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
__test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=__img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]


def __loader(split, pipeline, batch_size, sampler):
    return dict(
        batch_size=batch_size,
        # 2 CPU cores: loading in the main process beats worker processes.
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type=sampler, shuffle=split == 'train'),
        dataset=dict(
            type='CityscapesDataset',
            data_root=__data_root,
            data_prefix=dict(
                img_path=f'leftImg8bit/{split}',
                seg_map_path=f'gtFine/{split}'),
            pipeline=pipeline))


def __pspnet_r18(width):
    """PSPNet-R18-d8 with ``width`` stem/base channels (MMSeg's is 64)."""
    scale = width / 64
    return dict(
        pretrained=None,
        data_preprocessor=dict(size=__crop_size),
        backbone=dict(
            stem_channels=width, base_channels=width, norm_cfg=__norm_cfg),
        decode_head=dict(
            in_channels=int(512 * scale),
            channels=int(128 * scale),
            norm_cfg=__norm_cfg),
        auxiliary_head=dict(
            in_channels=int(256 * scale),
            channels=int(64 * scale),
            norm_cfg=__norm_cfg))


def __schedule(iters, lr):
    return dict(
        train_cfg=dict(
            type='IterBasedTrainLoop', max_iters=iters, val_interval=iters),
        optim_wrapper=dict(
            type='OptimWrapper',
            optimizer=dict(
                type='SGD', lr=lr, momentum=0.9, weight_decay=0.0005),
            clip_grad=None),
        param_scheduler=[
            dict(
                type='PolyLR',
                eta_min=1e-4,
                power=0.9,
                begin=0,
                end=iters,
                by_epoch=False)
        ],
        default_hooks=dict(
            logger=dict(
                type='LoggerHook', interval=10, log_metric_by_epoch=False),
            checkpoint=dict(
                type='CheckpointHook', by_epoch=False, interval=iters)))


demo = dict(
    crop_size=__crop_size,
    data_root=__data_root,
    # Also at top level in the configs: mmseg.apis.inference_model reads it.
    train_pipeline=__train_pipeline,
    test_pipeline=__test_pipeline,
    teacher_model=__pspnet_r18(32),
    student_model=__pspnet_r18(16),
    train_dataloader=__loader('train', __train_pipeline, 4, 'InfiniteSampler'),
    val_dataloader=__loader('val', __test_pipeline, 1, 'DefaultSampler'),
    # The teacher gets twice the students' schedule, as a teacher trained
    # once and reused would. SGD lr 0.02 at batch 4 (MMSeg: 0.01 at 4x2),
    # set once for short runs from scratch, not tuned per method.
    teacher_schedule=__schedule(iters=__teacher_iters, lr=0.02),
    student_schedule=__schedule(iters=200, lr=0.02),
    # Where `make demo` leaves the teacher (tools/demo.py passes its actual
    # path with --cfg-options model.teacher_ckpt=...).
    teacher_ckpt=f'{__repo_root}/work_dirs/demo/teacher/'
    f'iter_{__teacher_iters}.pth',
    env_cfg=dict(
        cudnn_benchmark=False,
        mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
        dist_cfg=dict(backend='gloo')),
    # Same seed -> same data order in every run. The same initial student
    # weights need more than a seed: a distiller draws random numbers for
    # its teacher before the student's init, so tools/demo.py gives every
    # student run one init checkpoint (load_from).
    randomness=dict(seed=0),
)
