# LSKD (logit-standardized KD, Sun et al., CVPR 2024), WRN-40-2 -> WRN-40-1 on
# CIFAR-100, the GDKD authors' LSKD hyper-parameters (ZaberKo/GDKD
# configs/cifar100/lskd/wrn40_2_wrn_40_1.yaml and its defaults): both logits
# z-scored per sample, T=2, 0.1 x cross-entropy + 9 x KD, no warm-up.
_base_ = './wrn40-2_wrn40-1_cifar100.py'

model = dict(
    distill_losses=dict(
        loss_kd=dict(
            temperature=2.0, loss_weight=9.0, logit_standardization=True)))
