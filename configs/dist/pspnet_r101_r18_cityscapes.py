# DIST on the decode-head logits, pixel-wise (PSPNet R101 -> R18): the
# setting of DIST's segmentation code (hunto/DIST_KD, also
# ZaberKo/seg-gdkd losses/distiller/dist.py): beta=1, gamma=1, tau=1,
# weight 1 on the main head, every pixel counts (no ignore mask), the
# intra-class relation over all pixels of the batch.
_base_ = '../_base_/distill/pspnet_r101_r18_cityscapes.py'

model = dict(
    head_weights=dict(_delete_=True, decode=1.0),
    distill_losses=dict(
        loss_dist=dict(
            type='DISTLoss',
            beta=1.0,
            gamma=1.0,
            temperature=1.0,
            ignore_index=None,
            loss_weight=1.0)))
