# The CRD / mdistiller CIFAR-100 schedule, used for teachers, students and
# every distillation run: SGD (lr 0.05, momentum 0.9, weight decay 5e-4) for
# 240 epochs, lr x0.1 at epochs 150, 180 and 210, batch 64.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4))

param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[150, 180, 210], gamma=0.1)

train_cfg = dict(by_epoch=True, max_epochs=240, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# lr 0.05 is for a total batch of 64 (one GPU); `--auto-scale-lr`-style
# scaling uses this base.
auto_scale_lr = dict(base_batch_size=64)
