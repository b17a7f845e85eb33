# Channel-wise distillation (Shu et al. 2021) on the decode-head logits with
# MMRazor's setting: tau=1, weight 5, no auxiliary-head term.
_base_ = '../_base_/distill/deeplabv3_r101_r18_ade20k.py'

model = dict(
    head_weights=dict(_delete_=True, decode=1.0),
    distill_losses=dict(
        loss_cwd=dict(type='CWDLoss', temperature=1.0, loss_weight=5.0)))
