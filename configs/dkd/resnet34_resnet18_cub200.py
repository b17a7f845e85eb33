# DKD, ResNet-34 -> ResNet-18 on CUB-200-2011 (transfer learning), the GDKD
# authors' hyper-parameters (ZaberKo/GDKD configs/TL/cub2011/r34_r18/dkd.yaml):
# alpha=1, beta=0.5, T=1, cross-entropy weight 1, warm-up 1 epoch (= none).
_base_ = '../_base_/distill/resnet34_resnet18_cub200.py'

model = dict(
    warmup_epochs=1,
    distill_losses=dict(
        loss_dkd=dict(
            type='DKDLoss',
            alpha=1.0,
            beta=0.5,
            temperature=1.0,
            ignore_index=None,  # no ignored labels in classification
            loss_weight=1.0)))
