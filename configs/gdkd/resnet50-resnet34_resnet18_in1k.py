# GDKD from an ensemble of ResNet-50 and ResNet-34 (equal weights) to
# ResNet-18 on ImageNet-1k. In 'prob' mode GDKD sees one teacher whose class
# distribution is the mean of the two teachers', so its top-5 partition is
# the ensemble's. Hyper-parameters are the authors' R34 -> R18 ones
# (ZaberKo/GDKD configs/imagenet/r34_r18/gdkd.yaml): k=5, w0=0.5, w1=1,
# w2=1, T=1, cross-entropy weight 1, warm-up 1 epoch.
_base_ = '../_base_/distill/resnet50-resnet34_resnet18_in1k.py'

model = dict(
    warmup_epochs=1,
    distill_losses=dict(
        loss_gdkd=dict(
            type='GDKDLoss',
            k=5,
            w0=0.5,
            w1=1.0,
            w2=1.0,
            temperature=1.0,
            kl_type='forward',
            strategy='topk',
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
