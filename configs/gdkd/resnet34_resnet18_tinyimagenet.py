# GDKD, ResNet-34 -> ResNet-18 on Tiny-ImageNet (transfer learning), the
# authors' hyper-parameters (ZaberKo/GDKD
# configs/TL/tiny-imagenet/r34_r18/gdkd.yaml): teacher top-5 vs the rest,
# w0=0.5, w1=1, w2=1, T=1, cross-entropy weight 1, warm-up 1 epoch (= none).
_base_ = '../_base_/distill/resnet34_resnet18_tinyimagenet.py'

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
