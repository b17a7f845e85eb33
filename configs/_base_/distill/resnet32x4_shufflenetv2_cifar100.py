# ResNet32x4 teacher -> ShuffleNetV2 student on CIFAR-100, the CRD / mdistiller
# protocol: 240 epochs, SGD lr 0.01, batch 64 on one GPU. The algorithm
# configs (configs/<algo>/) add the distillation losses and warm-up.
_base_ = [
    '../datasets/cifar100_bs64.py', '../schedules/cifar_240e.py',
    '../cifar_runtime.py'
]

model = dict(
    type='ClsDistiller',
    student=dict(cfg_path='{{ fileDirname }}/../models/cifar_shufflenetv2.py'),
    teacher=dict(cfg_path='{{ fileDirname }}/../models/cifar_resnet32x4.py'),
    # The published CRD teacher, converted with
    # tools/model_converters/cifar_kd_teacher.py, or a checkpoint of
    # configs/cifar_teachers/resnet32x4_240e_cifar100.py (see the README).
    teacher_ckpt='checkpoints/cifar_teachers/resnet32x4.pth',
    distill_losses=dict())

# the authors' (and CRD's) learning rate for the ShuffleNet / MobileNet
# students
optim_wrapper = dict(optimizer=dict(lr=0.01))
# distill.* terms and GDKD components averaged over the logging window like
# the losses, so the printed components add up to the printed loss; the
# warm-up factor stays the current value (docs/losses.md, "In the training
# log")
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm).*'
                     r'|^distill\.(?!warmup_factor$)')
