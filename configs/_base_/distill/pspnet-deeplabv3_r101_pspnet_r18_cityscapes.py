# An ensemble of two MMSeg model-zoo teachers, PSPNet-R101-d8 (79.76 mIoU)
# and DeepLabV3-R101-d8 (80.20 mIoU), -> PSPNet-R18-d8 student, Cityscapes
# 512x1024, MMSeg's 80k-iteration protocol. Data, schedule and runtime are
# the student's MMSeg config; the algorithm configs (configs/<algo>/) add
# the distillation losses and may change how the ensemble teaches.
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue the exact random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

model = dict(
    _delete_=True,
    type='SegDistiller',
    # ImageNet-pretrained R18 backbone (open-mmlab://resnet18_v1c), as MMSeg.
    student=dict(
        cfg_path='mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    # Both teachers are stride 8 with an FCN auxiliary head; they run one
    # after another, frozen, and are not stored in checkpoints.
    teacher=[
        dict(
            cfg_path='mmseg::pspnet/'
            'pspnet_r101-d8_4xb2-80k_cityscapes-512x1024.py',
            pretrained=None),
        dict(
            cfg_path='mmseg::deeplabv3/'
            'deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
            pretrained=None),
    ],
    teacher_ckpt=[
        'https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/'
        'pspnet_r101-d8_512x1024_80k_cityscapes/'
        'pspnet_r101-d8_512x1024_80k_cityscapes_20200606_112211-e1e1100f.pth',
        'https://download.openmmlab.com/mmsegmentation/v0.5/deeplabv3/'
        'deeplabv3_r101-d8_512x1024_80k_cityscapes/'
        'deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899'
        '.pth',
    ],
    teacher_weights=[1.0, 1.0],
    # the losses see the ensemble's averaged class probabilities
    teacher_ensemble='prob',
    # decode head at 1.0 and auxiliary head at 0.4, as the published recipe
    head_weights=dict(decode=1.0, aux=0.4),
    distill_losses=dict())
