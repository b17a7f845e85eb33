# PSPNet-R101-d8 teacher (MMSeg model zoo, VOC 2012 aug 40k: 78.52 mIoU)
# -> PSPNet-R18-d8 student, Pascal VOC 2012 + SBD aug 512x512 with
# MMSeg's VOC protocol (40k iterations, 4 GPUs x 4, 21 classes).
# Data, schedule and runtime are the student's config; the algorithm configs
# (configs/<algo>/) add the distillation losses.
_base_ = '../../seg_students/pspnet_r18-d8_4xb4-40k_voc12aug-512x512.py'
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue the exact random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

model = dict(
    _delete_=True,
    type='SegDistiller',
    student=dict(
        cfg_path='{{ fileDirname }}/../../seg_students/'
        'pspnet_r18-d8_4xb4-40k_voc12aug-512x512.py'),
    teacher=dict(
        cfg_path='mmseg::pspnet/'
        'pspnet_r101-d8_4xb4-40k_voc12aug-512x512.py',
        pretrained=None),
    teacher_ckpt='https://download.openmmlab.com/mmsegmentation/v0.5/pspnet/'
    'pspnet_r101-d8_512x512_40k_voc12aug/'
    'pspnet_r101-d8_512x512_40k_voc12aug_20200613_161222-bc933b18.pth',
    head_weights=dict(decode=1.0, aux=0.4),
    distill_losses=dict())
# distill.* terms and GDKD components averaged over the logging window like
# the losses, so the printed components add up to the printed loss; the
# warm-up factor stays the current value (docs/losses.md, "In the training
# log")
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm).*'
                     r'|^distill\.(?!warmup_factor$)')
