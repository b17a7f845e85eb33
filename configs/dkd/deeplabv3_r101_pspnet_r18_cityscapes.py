# Pixel-wise DKD (groups by the ground-truth label). alpha=1, beta=2, T=1
# make it equal to the GDKD config with k=1 on pixels the teacher gets right.
_base_ = '../_base_/distill/deeplabv3_r101_pspnet_r18_cityscapes.py'

model = dict(
    distill_losses=dict(
        loss_dkd=dict(
            type='DKDLoss',
            alpha=1.0,
            beta=2.0,
            temperature=1.0,
            ignore_index=255,
            loss_weight=1.0)))
