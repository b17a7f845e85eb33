# ResNet-34 teacher (fine-tuned on CUB-200-2011 by
# configs/tl_teachers/resnet34_100e_cub200.py) -> ImageNet-pretrained ResNet-18
# student on CUB-200-2011, the GDKD authors' transfer-learning protocol
# (ZaberKo/GDKD configs/TL/cub2011/r34_r18): 100 epochs, SGD lr 0.0025, batch
# 64 on one GPU. The algorithm configs (configs/<algo>/) add the distillation
# losses.
_base_ = [
    '../datasets/cub200_bs64.py', '../schedules/tl_cub200_100e.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue torch's random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

model = dict(
    type='ClsDistiller',
    student=dict(cfg_path='{{ fileDirname }}/../models/tl_resnet18_200c.py'),
    teacher=dict(
        cfg_path='{{ fileDirname }}/../models/tl_resnet34_200c.py',
        # all weights come from teacher_ckpt
        backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/tl_teachers/resnet34_cub200.pth',
    distill_losses=dict())
# distill.* terms and GDKD components averaged over the logging window like
# the losses, so the printed components add up to the printed loss; the
# warm-up factor stays the current value (docs/losses.md, "In the training
# log")
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm).*'
                     r'|^distill\.(?!warmup_factor$)')
