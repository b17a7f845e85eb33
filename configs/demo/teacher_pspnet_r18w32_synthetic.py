# The demo's teacher: MMSeg's PSPNet-R18-d8 at half its width (32 stem/base
# channels, ~4x the student's parameters), trained from scratch on the
# synthetic Cityscapes scenes with a longer schedule than the students. Its
# checkpoint is a plain MMSeg one and becomes the distillers' teacher_ckpt.
_base_ = [
    'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    './synthetic_settings.py'
]
model = _base_.demo.teacher_model
crop_size = _base_.demo.crop_size
# The runner gives this to a model without its own (the distiller).
data_preprocessor = dict(size=crop_size)
data_root = _base_.demo.data_root
train_pipeline = _base_.demo.train_pipeline
test_pipeline = _base_.demo.test_pipeline
train_dataloader = _base_.demo.train_dataloader
val_dataloader = _base_.demo.val_dataloader
test_dataloader = val_dataloader
train_cfg = _base_.demo.teacher_schedule.train_cfg
optim_wrapper = _base_.demo.teacher_schedule.optim_wrapper
param_scheduler = _base_.demo.teacher_schedule.param_scheduler
default_hooks = _base_.demo.teacher_schedule.default_hooks
env_cfg = _base_.demo.env_cfg
randomness = _base_.demo.randomness
