# MMPretrain's default runtime for the 240-epoch CIFAR runs: a checkpoint
# every 10 epochs (last 3 kept) plus the best top-1 one.
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
# resumed runs continue torch's random stream (dropout), see the hook
custom_hooks = [dict(type='RandomStateHook')]

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=10, max_keep_ckpts=3,
        save_best='auto'))
