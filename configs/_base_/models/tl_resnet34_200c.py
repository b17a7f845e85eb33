# ResNet-34 for 200-class transfer learning: the ImageNet model with a new
# 200-way head; the backbone starts from ImageNet weights.
_base_ = 'mmpretrain::_base_/models/resnet34.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            # MMPretrain's ImageNet weights (the authors use torchvision's)
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet34_8xb32_in1k_20210831-f257d4e6.pth',
            prefix='backbone.')),
    head=dict(num_classes=200))
