# Fine-tune the ImageNet ResNet-34 on CUB-200-2011: the teacher of the
# transfer-learning runs, the authors' recipe (ZaberKo/GDKD
# configs/TL/*/vanilla/r34.yaml). Its checkpoint is a plain MMPretrain
# one: copy it to checkpoints/tl_teachers/resnet34_cub200.pth.
_base_ = [
    '../_base_/models/tl_resnet34_200c.py',
    '../_base_/datasets/cub200_bs64.py',
    '../_base_/schedules/tl_cub200_100e.py',
    'mmpretrain::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmgdkd'], allow_failed_imports=False)
