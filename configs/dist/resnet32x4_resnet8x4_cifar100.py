# DIST (Huang et al., NeurIPS 2022), ResNet32x4 -> ResNet8x4 on CIFAR-100, the
# GDKD authors' DIST baseline (ZaberKo/GDKD
# configs/cifar100/dist/res32x4_res8x4.yaml and its defaults): beta=2
# (inter-class), gamma=2 (intra-class), tau=4, cross-entropy weight 1, no
# warm-up.
_base_ = '../_base_/distill/resnet32x4_resnet8x4_cifar100.py'

model = dict(
    distill_losses=dict(
        loss_dist=dict(
            type='DISTLoss',
            beta=2.0,
            gamma=2.0,
            temperature=4.0,
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
