# LS-GDKD, ResNet32x4 -> ShuffleNetV2 on CIFAR-100: GDKD on logit-standardized
# logits, the authors' experimental LS_GDKD (ZaberKo/GDKD
# configs/cifar100/experimental/ls_gdkd/res32x4_shuv2.yaml, norm_mode
# 'global'): the GDKD hyper-parameters of the pair (k=5, w0=1, w1=1, w2=8, T=4,
# warm-up 20 epochs), both logits z-scored per sample first.
_base_ = './resnet32x4_shufflenetv2_cifar100.py'

model = dict(
    distill_losses=dict(loss_gdkd=dict(logit_standardization=True)))
