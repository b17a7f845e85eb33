# Channel-wise distillation (Shu et al. 2021) on the decode-head logits with
# MMRazor's setting: tau=1, weight 5, no auxiliary-head term.
_base_ = '../_base_/distill/segformer_mit-b4_mit-b0_cityscapes.py'

model = dict(
    head_weights=dict(_delete_=True, decode=1.0),
    distill_losses=dict(
        loss_cwd=dict(type='CWDLoss', temperature=1.0, loss_weight=5.0)))
