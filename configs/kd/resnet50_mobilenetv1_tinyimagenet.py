# KD, ResNet-50 -> MobileNetV1 on Tiny-ImageNet (transfer learning), the GDKD
# authors' recipe (ZaberKo/GDKD configs/TL/tiny-imagenet/r50_mv1/kd.yaml): T=1,
# 0.5 x cross-entropy + 0.5 x KD, no warm-up.
_base_ = '../_base_/distill/resnet50_mobilenetv1_tinyimagenet.py'

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.5))),
    distill_losses=dict(
        loss_kd=dict(
            type='KDLoss',
            temperature=1.0,
            ignore_index=None,  # no ignored labels in classification
            loss_weight=0.5)))
