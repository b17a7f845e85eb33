# Fine-tune the ImageNet ResNet-34 on Tiny-ImageNet: the teacher of the
# transfer-learning runs, the authors' recipe (ZaberKo/GDKD
# configs/TL/*/vanilla/r34.yaml). Its checkpoint is a plain MMPretrain
# one: copy it to checkpoints/tl_teachers/resnet34_tinyimagenet.pth.
_base_ = [
    '../_base_/models/tl_resnet34_200c.py',
    '../_base_/datasets/tinyimagenet_bs64.py',
    '../_base_/schedules/tl_tinyimagenet_100e.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
