# MobileNetV1 trained from scratch on ImageNet-1k, the authors' vanilla
# recipe (ZaberKo/GDKD configs/imagenet/vanilla/mv1.yaml: 100 epochs, SGD
# lr 0.2 at batch 512 = 0.1 at 256, weight decay 1e-4, x0.1 at 30/60/90).
# Its checkpoint is the ImageNet-pretrained student of the
# transfer-learning configs (checkpoints/imagenet/mobilenetv1.pth).
_base_ = [
    '../_base_/models/mobilenetv1_in1k.py',
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
    'mmpretrain::_base_/schedules/imagenet_bs256.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
