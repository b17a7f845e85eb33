# Pixel-wise GDKD from an ensemble of two teachers, PSPNet-R101 and
# DeepLabV3-R101 (equal weights), to PSPNet-R18. In 'prob' mode GDKD sees
# one teacher whose class distribution is the mean of the two teachers'
# (at the loss's temperature), so its top-3 partition is the ensemble's.
# Hyper-parameters are the authors' segmentation defaults: k=3, w0=1, w1=1,
# w2=2, T=1, no warm-up; decode head 1.0, aux head 0.4.
_base_ = '../_base_/distill/pspnet-deeplabv3_r101_pspnet_r18_cityscapes.py'

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
