# KD, ResNet110 -> ResNet32 on CIFAR-100, the CRD / mdistiller recipe: T=4,
# 0.1 x cross-entropy + 0.9 x KD, no warm-up.
_base_ = '../_base_/distill/resnet110_resnet32_cifar100.py'

model = dict(
    student=dict(head=dict(loss=dict(loss_weight=0.1))),
    distill_losses=dict(
        loss_kd=dict(
            type='KDLoss',
            temperature=4.0,
            ignore_index=None,  # no ignored labels in classification
            loss_weight=0.9)))
