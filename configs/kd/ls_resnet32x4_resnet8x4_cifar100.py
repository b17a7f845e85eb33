# LSKD (logit-standardized KD, Sun et al., CVPR 2024), ResNet32x4 -> ResNet8x4
# on CIFAR-100, the GDKD authors' LSKD hyper-parameters (ZaberKo/GDKD
# configs/cifar100/lskd/res32x4_res8x4.yaml and its defaults): both logits
# z-scored per sample, T=2, 0.1 x cross-entropy + 9 x KD, no warm-up.
_base_ = './resnet32x4_resnet8x4_cifar100.py'

model = dict(
    distill_losses=dict(
        loss_kd=dict(
            temperature=2.0, loss_weight=9.0, logit_standardization=True)))
