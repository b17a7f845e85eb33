# GDKD, WRN-40-2 -> WRN-40-1 on CIFAR-100, the authors' hyper-parameters
# (ZaberKo/GDKD configs/cifar100/gdkd/wrn40_2_wrn_40_1.yaml): teacher top-5 vs
# the rest, w0=1 (group masses), w1=2 (within the top-5), w2=6 (within the
# rest), T=4, cross-entropy weight 1, distillation warmed up linearly over 20
# epochs.
_base_ = '../_base_/distill/wrn40-2_wrn40-1_cifar100.py'

model = dict(
    warmup_epochs=20,
    distill_losses=dict(
        loss_gdkd=dict(
            type='GDKDLoss',
            k=5,
            w0=1.0,
            w1=2.0,
            w2=6.0,
            temperature=4.0,
            kl_type='forward',
            strategy='topk',
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
