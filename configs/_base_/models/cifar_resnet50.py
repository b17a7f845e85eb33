# ResNet50 (23.71M params): the CRD / mdistiller CIFAR-100 model
# (``resnetv2.ResNet50``: ImageNet bottlenecks, 3x3 stride-1 stem, no max
# pool). MMPretrain's ResNet_CIFAR is the same network; the converter
# (tools/model_converters/cifar_kd_teacher.py) renames the reference's
# ``shortcut`` to ``downsample`` and ``linear`` to ``head.fc``.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=50,
        out_indices=(3, ),
        # the reference starts the residual branches' last BN at 1
        zero_init_residual=False),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
