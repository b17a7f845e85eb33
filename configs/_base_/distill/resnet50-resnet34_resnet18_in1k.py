# An ensemble of two MMPretrain model-zoo teachers, ResNet-50 (76.55 top-1)
# and ResNet-34 (73.62 top-1), -> ResNet-18 student on ImageNet-1k with
# MMPretrain's ResNet-18 recipe: 100 epochs, SGD lr 0.1 for a total batch of
# 256 (8 GPUs x 32), lr x0.1 at epochs 30/60/90. The algorithm configs
# (configs/<algo>/) add the distillation losses.
_base_ = 'mmpretrain::resnet/resnet18_8xb32_in1k.py'
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue torch's random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

model = dict(
    _delete_=True,
    type='ClsDistiller',
    student=dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py'),
    teacher=[
        dict(cfg_path='mmpretrain::resnet/resnet50_8xb32_in1k.py'),
        dict(cfg_path='mmpretrain::resnet/resnet34_8xb32_in1k.py'),
    ],
    teacher_ckpt=[
        'https://download.openmmlab.com/mmclassification/v0/'
        'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth',
        'https://download.openmmlab.com/mmclassification/v0/'
        'resnet/resnet34_8xb32_in1k_20210831-f257d4e6.pth',
    ],
    teacher_weights=[1.0, 1.0],
    teacher_ensemble='prob',
    distill_losses=dict())
