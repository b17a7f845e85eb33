# ResNet32 (0.47M params): the CRD / mdistiller CIFAR-100 model.
# Backbone with the reference module names, global average pooling and
# one linear layer (``head.fc``), so the published checkpoints
# convert key by key (tools/model_converters/cifar_kd_teacher.py).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='CIFARResNet', arch='resnet32'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=100,
        in_channels=64,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
