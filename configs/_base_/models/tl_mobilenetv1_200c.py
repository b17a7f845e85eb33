# MobileNetV1 for 200-class transfer learning: the ImageNet model with a new
# 200-way head; the backbone starts from ImageNet weights.
_base_ = './mobilenetv1_in1k.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            # the authors' own ImageNet MobileNetV1: train it with
            # configs/imagenet_students/mobilenetv1_100e_in1k.py, or convert
            # theirs with tools/model_converters/cifar_kd_teacher.py
            checkpoint='checkpoints/imagenet/mobilenetv1.pth',
            prefix='backbone.')),
    head=dict(num_classes=200))
