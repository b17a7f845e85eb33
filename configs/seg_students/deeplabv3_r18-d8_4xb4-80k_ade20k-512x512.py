# DeepLabV3-R18-d8 on ADE20K, MMSeg's ADE20K DeepLabV3 protocol (512x512, 80k,
# 4x4).
# MMSeg ships R18 students for Cityscapes only; this is its R50 config of
# the same dataset with the R18 change MMSeg makes for Cityscapes
# (pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py): R18-v1c backbone,
# heads at a quarter of the R50 widths. Also the no-KD baseline config.
_base_ = 'mmseg::deeplabv3/deeplabv3_r50-d8_4xb4-80k_ade20k-512x512.py'
model = dict(
    pretrained='open-mmlab://resnet18_v1c',
    backbone=dict(depth=18),
    decode_head=dict(in_channels=512, channels=128),
    auxiliary_head=dict(in_channels=256, channels=64))
