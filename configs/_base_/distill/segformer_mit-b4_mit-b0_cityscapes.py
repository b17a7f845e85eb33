# SegFormer MiT-B4 teacher (MMSeg model zoo, 81.89 mIoU) -> SegFormer MiT-B0
# student (MMSeg 76.54 mIoU), Cityscapes 1024x1024, the student's MMSeg
# protocol (160k iterations, AdamW, 8 GPUs x 1). SegFormer has no
# auxiliary head: the decode head only.
# Data, schedule and runtime are the student's config; the algorithm configs
# (configs/<algo>/) add the distillation losses.
_base_ = 'mmseg::segformer/segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue the exact random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

model = dict(
    _delete_=True,
    type='SegDistiller',
    student=dict(
        cfg_path='mmseg::segformer/'
        'segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py'),
    teacher=dict(
        cfg_path='mmseg::segformer/'
        'segformer_mit-b4_8xb1-160k_cityscapes-1024x1024.py',
        backbone=dict(init_cfg=None)),
    teacher_ckpt='https://download.openmmlab.com/mmsegmentation/v0.5/'
    'segformer/segformer_mit-b4_8x1_1024x1024_160k_cityscapes/'
    'segformer_mit-b4_8x1_1024x1024_160k_cityscapes_'
    '20211207_080709-07f6c333.pth',
    head_weights=dict(decode=1.0),
    distill_losses=dict())
# distill.* terms and GDKD components averaged over the logging window like
# the losses, so the printed components add up to the printed loss; the
# warm-up factor stays the current value (docs/losses.md, "In the training
# log")
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm).*'
                     r'|^distill\.(?!warmup_factor$)')
