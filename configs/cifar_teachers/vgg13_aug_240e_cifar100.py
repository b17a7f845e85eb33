# Train the VGG13 CIFAR-100 teacher with AutoAugment + Cutout: the
# "aug" teacher the GDKD authors distil from by default (ZaberKo/GDKD
# configs/cifar100/teacher_aug/vgg13.yaml, DISTILLER.AUG_TEACHER=True):
# random crop (pad 4) + flip, torchvision's CIFAR-10 AutoAugment policy
# (fill 128), one 16x16 Cutout hole; otherwise the CRD recipe (240 epochs,
# SGD lr 0.05, batch 64). Its checkpoint is a plain MMPretrain one: copy it
# to checkpoints/cifar_teachers/vgg13_aug.pth and pass it as
# model.teacher_ckpt to a distillation config.
_base_ = './vgg13_240e_cifar100.py'
custom_imports = dict(
    imports=['mmgdkd', 'mmgdkd.datasets.transforms'],
    allow_failed_imports=False)

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='CIFAR10AutoAugment'),
    dict(type='CenterCutout', n_holes=1, length=16),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
