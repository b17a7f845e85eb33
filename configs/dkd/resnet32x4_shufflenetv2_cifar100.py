# DKD, ResNet32x4 -> ShuffleNetV2 on CIFAR-100, mdistiller's hyper-parameters
# (configs/cifar100/dkd/res32x4_shuv2.yaml, the same in ZaberKo/GDKD): alpha=1
# (target class), beta=8 (non-target classes), T=4, cross-entropy
# weight 1, warm-up over 20 epochs.
_base_ = '../_base_/distill/resnet32x4_shufflenetv2_cifar100.py'

model = dict(
    warmup_epochs=20,
    distill_losses=dict(
        loss_dkd=dict(
            type='DKDLoss',
            alpha=1.0,
            beta=8.0,
            temperature=4.0,
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
