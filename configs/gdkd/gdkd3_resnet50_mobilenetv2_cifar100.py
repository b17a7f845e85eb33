# GDKD3, ResNet50 -> MobileNetV2 on CIFAR-100, the authors' hyper-parameters
# (ZaberKo/GDKD configs/cifar100/gdkd3/res50_mv2.yaml with their GDKD3
# defaults): groups top-1 / top-2..4 / rest of the teacher (k=4), w0=1 (the
# 3-way group-mass KL), w1=1 (within top-2..4), w2=8 (within the rest),
# T=4, cross-entropy weight 1, warm-up 20 epochs.
_base_ = '../_base_/distill/resnet50_mobilenetv2_cifar100.py'

model = dict(
    warmup_epochs=20,
    distill_losses=dict(
        loss_gdkd=dict(
            type='GDKDLoss',
            strategy='topk3',
            k=4,
            w0=1.0,
            w1=1.0,
            w2=8.0,
            temperature=4.0,
            kl_type='forward',
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
