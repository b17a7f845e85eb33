# DIST pixel-wise on the head logits (DeepLabV3 R101 -> R18), as the GDKD
# authors' segmentation code runs it (ZaberKo/seg-gdkd train_kd.py with
# losses/distiller/dist.py): beta=1, gamma=1, tau=1, every pixel counts (no
# ignore mask), the intra-class relation over all pixels of the batch, on
# the decode head (weight 1) and the auxiliary head (weight 0.4, the base's
# head_weights). DIST's own code (hunto/DIST_KD, CIRKD-based) distils the
# decode head only: head_weights=dict(_delete_=True, decode=1.0).
_base_ = '../_base_/distill/deeplabv3_r101_r18_cityscapes.py'

model = dict(
    distill_losses=dict(
        loss_dist=dict(
            type='DISTLoss',
            beta=1.0,
            gamma=1.0,
            temperature=1.0,
            ignore_index=None,
            loss_weight=1.0)))
