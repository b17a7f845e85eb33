# Pixel-wise KD (Hinton et al.): T^2 KL(teacher || student) per pixel, T=1.
_base_ = '../_base_/distill/pspnet_r101_r18_ade20k.py'

model = dict(
    distill_losses=dict(
        loss_kd=dict(
            type='KDLoss', temperature=1.0, ignore_index=255,
            loss_weight=1.0)))
