# LS-GDKD, WRN-40-2 -> WRN-40-1 on CIFAR-100: GDKD on logit-standardized
# logits, the authors' experimental LS_GDKD (ZaberKo/GDKD
# configs/cifar100/experimental/ls_gdkd/wrn40_2_wrn_40_1.yaml, norm_mode
# 'global'): the GDKD hyper-parameters of the pair (k=5, w0=1, w1=2, w2=6, T=4,
# warm-up 20 epochs), both logits z-scored per sample first.
_base_ = './wrn40-2_wrn40-1_cifar100.py'

model = dict(
    distill_losses=dict(loss_gdkd=dict(logit_standardization=True)))
