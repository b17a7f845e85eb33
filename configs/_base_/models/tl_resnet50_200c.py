# ResNet-50 for 200-class transfer learning: the ImageNet model with a new
# 200-way head; the backbone starts from ImageNet weights.
_base_ = 'mmpretrain::_base_/models/resnet50.py'

model = dict(
    backbone=dict(
        init_cfg=dict(
            type='Pretrained',
            # MMPretrain's ImageNet weights (the authors use torchvision's)
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth',
            prefix='backbone.')),
    head=dict(num_classes=200))
