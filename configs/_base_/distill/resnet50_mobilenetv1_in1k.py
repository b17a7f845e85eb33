# ResNet-50 teacher (MMPretrain model zoo, 76.55 top-1) -> MobileNetV1
# student on ImageNet-1k: 100 epochs, SGD lr 0.1 for a total batch of 256
# (8 GPUs x 32; the authors' lr 0.2 at batch 512 is the same linear
# scaling), weight decay 1e-4, lr x0.1 at epochs 30/60/90: MMPretrain's
# ImageNet data, schedule and runtime. The algorithm configs
# (configs/<algo>/) add the distillation losses.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue torch's random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

model = dict(
    type='ClsDistiller',
    student=dict(cfg_path='{{ fileDirname }}/../models/mobilenetv1_in1k.py'),
    teacher=dict(cfg_path='mmpretrain::resnet/resnet50_8xb32_in1k.py'),
    # the authors use torchvision's ResNet-50 (76.13); MMPretrain's is the
    # same network with its own weights
    teacher_ckpt='https://download.openmmlab.com/mmclassification/v0/resnet/'
    'resnet50_8xb32_in1k_20210831-ea4938fc.pth',
    distill_losses=dict())
# distill.* terms and GDKD components averaged over the logging window like
# the losses, so the printed components add up to the printed loss; the
# warm-up factor stays the current value (docs/losses.md, "In the training
# log")
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm).*'
                     r'|^distill\.(?!warmup_factor$)')
