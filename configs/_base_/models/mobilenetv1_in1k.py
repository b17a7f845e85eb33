# MobileNetV1 (4.23M params) for ImageNet-1k: the student of the ResNet-50
# -> MobileNetV1 benchmark (mdistiller / GDKD authors' definition, width
# 1.0, ReLU). The reference's AvgPool2d(7) + fc are the neck and head.fc.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='MobileNetV1'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, 5)))
