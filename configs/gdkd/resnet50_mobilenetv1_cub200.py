# GDKD, ResNet-50 -> MobileNetV1 on CUB-200-2011 (transfer learning), the
# authors' hyper-parameters (ZaberKo/GDKD
# configs/TL/cub2011/r50_mv1/gdkd.yaml): teacher top-5 vs the rest, w0=0.5,
# w1=2, w2=2, T=1, cross-entropy weight 1, warm-up 1 epoch (= none).
_base_ = '../_base_/distill/resnet50_mobilenetv1_cub200.py'

model = dict(
    warmup_epochs=1,
    distill_losses=dict(
        loss_gdkd=dict(
            type='GDKDLoss',
            k=5,
            w0=0.5,
            w1=2.0,
            w2=2.0,
            temperature=1.0,
            kl_type='forward',
            strategy='topk',
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
