# DeepLabV3-R101-d8 teacher (MMSeg model zoo, ADE20K 80k: 44.08 mIoU) ->
# DeepLabV3-R18-d8 student, ADE20K 512x512 with MMSeg's ADE20K protocol
# (80k iterations, 4 GPUs x 4, SGD lr 0.01, 150 classes).
# Data, schedule and runtime are the student's config; the algorithm configs
# (configs/<algo>/) add the distillation losses.
_base_ = '../../seg_students/deeplabv3_r18-d8_4xb4-80k_ade20k-512x512.py'
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue the exact random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

model = dict(
    _delete_=True,
    type='SegDistiller',
    student=dict(
        cfg_path='{{ fileDirname }}/../../seg_students/'
        'deeplabv3_r18-d8_4xb4-80k_ade20k-512x512.py'),
    teacher=dict(
        cfg_path='mmseg::deeplabv3/'
        'deeplabv3_r101-d8_4xb4-80k_ade20k-512x512.py',
        pretrained=None),
    teacher_ckpt='https://download.openmmlab.com/mmsegmentation/v0.5/'
    'deeplabv3/deeplabv3_r101-d8_512x512_80k_ade20k/'
    'deeplabv3_r101-d8_512x512_80k_ade20k_20200615_021256-d89c7fa4.pth',
    head_weights=dict(decode=1.0, aux=0.4),
    distill_losses=dict())
# distill.* terms and GDKD components averaged over the logging window like
# the losses, so the printed components add up to the printed loss; the
# warm-up factor stays the current value (docs/losses.md, "In the training
# log")
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm).*'
                     r'|^distill\.(?!warmup_factor$)')
