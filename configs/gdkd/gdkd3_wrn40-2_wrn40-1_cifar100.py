# GDKD3, WRN-40-2 -> WRN-40-1 on CIFAR-100, the authors' hyper-parameters
# (ZaberKo/GDKD configs/cifar100/gdkd3/wrn40_2_wrn_40_1.yaml with their GDKD3
# defaults): groups top-1 / top-2..4 / rest of the teacher (k=4), w0=1 (the
# 3-way group-mass KL), w1=2 (within top-2..4), w2=6 (within the rest),
# T=4, cross-entropy weight 1, warm-up 20 epochs.
_base_ = '../_base_/distill/wrn40-2_wrn40-1_cifar100.py'

model = dict(
    warmup_epochs=20,
    distill_losses=dict(
        loss_gdkd=dict(
            type='GDKDLoss',
            strategy='topk3',
            k=4,
            w0=1.0,
            w1=2.0,
            w2=6.0,
            temperature=4.0,
            kl_type='forward',
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
