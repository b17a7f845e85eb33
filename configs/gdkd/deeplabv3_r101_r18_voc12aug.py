# Pixel-wise GDKD with the segmentation defaults of the authors' code:
# teacher top-3 vs the rest, w0=1 (group masses), w1=1 (within top-3),
# w2=2 (within the rest), T=1, no warm-up.
_base_ = '../_base_/distill/deeplabv3_r101_r18_voc12aug.py'

model = dict(
    distill_losses=dict(
        loss_gdkd=dict(
            type='GDKDLoss',
            k=3,
            w0=1.0,
            w1=1.0,
            w2=2.0,
            temperature=1.0,
            kl_type='forward',
            strategy='topk',
            ignore_index=255,
            loss_weight=1.0)))
