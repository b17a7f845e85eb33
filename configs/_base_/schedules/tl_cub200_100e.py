# The GDKD authors' transfer-learning schedule on CUB-200-2011
# (ZaberKo/GDKD configs/TL): SGD lr 0.0025, momentum 0.9, weight decay 1e-3,
# 100 epochs, lr x0.1 at epochs 40 and 80, batch 64 on one GPU; the
# same for the teachers' fine-tuning, the baselines and every distillation
# run.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.0025, momentum=0.9, weight_decay=1e-3))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[40, 80], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)
