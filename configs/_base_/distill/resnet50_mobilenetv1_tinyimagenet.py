# ResNet-50 teacher (fine-tuned on Tiny-ImageNet by
# configs/tl_teachers/resnet50_100e_tinyimagenet.py) -> ImageNet-pretrained
# MobileNetV1 student on Tiny-ImageNet, the GDKD authors' transfer-learning
# protocol (ZaberKo/GDKD configs/TL/tiny-imagenet/r50_mv1): 100 epochs, SGD lr
# 0.001, batch 64 on one GPU. The algorithm configs (configs/<algo>/) add the
# distillation losses.
_base_ = [
    '../datasets/tinyimagenet_bs64.py', '../schedules/tl_tinyimagenet_100e.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue torch's random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

model = dict(
    type='ClsDistiller',
    student=dict(
        cfg_path='{{ fileDirname }}/../models/tl_mobilenetv1_200c.py'),
    teacher=dict(
        cfg_path='{{ fileDirname }}/../models/tl_resnet50_200c.py',
        # all weights come from teacher_ckpt
        backbone=dict(init_cfg=None)),
    teacher_ckpt='checkpoints/tl_teachers/resnet50_tinyimagenet.pth',
    distill_losses=dict())
# distill.* terms and GDKD components averaged over the logging window like
# the losses, so the printed components add up to the printed loss; the
# warm-up factor stays the current value (docs/losses.md, "In the training
# log")
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm).*'
                     r'|^distill\.(?!warmup_factor$)')
