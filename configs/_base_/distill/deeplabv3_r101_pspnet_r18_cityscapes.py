# The authors' own pairing (ZaberKo/seg-gdkd, train_scripts/train_kd/
# pspnet_res18.sh): DeepLabV3-R101-d8 teacher (MMSeg model zoo, 80.20 mIoU)
# -> PSPNet-R18-d8 student (MMSeg 74.87 mIoU), Cityscapes 512x1024 under
# MMSeg's 80k protocol (the authors train 40k, batch 16, with their own
# teacher; see configs/README.md, "Conventions").
# Data, schedule and runtime are the student's config; the algorithm configs
# (configs/<algo>/) add the distillation losses.
_base_ = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue the exact random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

model = dict(
    _delete_=True,
    type='SegDistiller',
    student=dict(
        cfg_path='mmseg::pspnet/'
        'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'),
    teacher=dict(
        cfg_path='mmseg::deeplabv3/'
        'deeplabv3_r101-d8_4xb2-80k_cityscapes-512x1024.py',
        pretrained=None),
    teacher_ckpt='https://download.openmmlab.com/mmsegmentation/v0.5/'
    'deeplabv3/deeplabv3_r101-d8_512x1024_80k_cityscapes/'
    'deeplabv3_r101-d8_512x1024_80k_cityscapes_20200606_113503-9e428899.pth',
    head_weights=dict(decode=1.0, aux=0.4),
    distill_losses=dict())
# distill.* terms and GDKD components averaged over the logging window like
# the losses, so the printed components add up to the printed loss; the
# warm-up factor stays the current value (docs/losses.md, "In the training
# log")
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm).*'
                     r'|^distill\.(?!warmup_factor$)')
