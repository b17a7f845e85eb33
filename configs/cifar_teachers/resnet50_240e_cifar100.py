# Train the ResNet50 CIFAR-100 teacher from scratch with the CRD / mdistiller
# recipe (240 epochs, SGD lr 0.05, batch 64; CRD's published ResNet50
# teacher reaches 79.34 top-1). Its checkpoint is a plain MMPretrain one:
# give it to the distillation configs as teacher_ckpt directly.
_base_ = [
    '../_base_/models/cifar_resnet50.py',
    '../_base_/datasets/cifar100_bs64.py',
    '../_base_/schedules/cifar_240e.py',
    '../_base_/cifar_runtime.py',
]
