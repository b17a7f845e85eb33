# DKD with the real Cityscapes recipe (configs/dkd: alpha=1, beta=2, T=1,
# decode head 1.0, aux head 0.4) on the demo's models, data and schedule:
# the student is the baseline config's model, the teacher the demo teacher.
_base_ = [
    '../dkd/pspnet_r101_r18_cityscapes.py', './synthetic_settings.py'
]
model = dict(
    student=dict(cfg_path='{{ fileDirname }}/pspnet_r18w16_synthetic.py'),
    teacher=dict(
        cfg_path='{{ fileDirname }}/teacher_pspnet_r18w32_synthetic.py'),
    teacher_ckpt=_base_.demo.teacher_ckpt)
crop_size = _base_.demo.crop_size
# The runner gives this to a model without its own (the distiller).
data_preprocessor = dict(size=crop_size)
data_root = _base_.demo.data_root
train_pipeline = _base_.demo.train_pipeline
test_pipeline = _base_.demo.test_pipeline
train_dataloader = _base_.demo.train_dataloader
val_dataloader = _base_.demo.val_dataloader
test_dataloader = val_dataloader
train_cfg = _base_.demo.student_schedule.train_cfg
optim_wrapper = _base_.demo.student_schedule.optim_wrapper
param_scheduler = _base_.demo.student_schedule.param_scheduler
default_hooks = _base_.demo.student_schedule.default_hooks
env_cfg = _base_.demo.env_cfg
randomness = _base_.demo.randomness
