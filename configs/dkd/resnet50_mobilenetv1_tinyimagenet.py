# DKD, ResNet-50 -> MobileNetV1 on Tiny-ImageNet (transfer learning), the GDKD
# authors' hyper-parameters (ZaberKo/GDKD
# configs/TL/tiny-imagenet/r50_mv1/dkd.yaml): alpha=1, beta=2, T=1,
# cross-entropy weight 1, warm-up 1 epoch (= none).
_base_ = '../_base_/distill/resnet50_mobilenetv1_tinyimagenet.py'

model = dict(
    warmup_epochs=1,
    distill_losses=dict(
        loss_dkd=dict(
            type='DKDLoss',
            alpha=1.0,
            beta=2.0,
            temperature=1.0,
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
