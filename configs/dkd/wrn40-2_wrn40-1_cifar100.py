# DKD, WRN-40-2 -> WRN-40-1 on CIFAR-100, mdistiller's hyper-parameters
# (configs/cifar100/dkd/wrn40_2_wrn_40_1.yaml, the same in ZaberKo/GDKD):
# alpha=1 (target class), beta=6 (non-target classes), T=4, cross-entropy
# weight 1, warm-up over 20 epochs.
_base_ = '../_base_/distill/wrn40-2_wrn40-1_cifar100.py'

model = dict(
    warmup_epochs=20,
    distill_losses=dict(
        loss_dkd=dict(
            type='DKDLoss',
            alpha=1.0,
            beta=6.0,
            temperature=4.0,
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
