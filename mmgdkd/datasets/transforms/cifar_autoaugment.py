# Copyright (c) mmgdkd contributors. All rights reserved.
"""AutoAugment's CIFAR-10 policy (Cubuk et al., 2019) for 32x32 images.

The GDKD authors train their default ("aug") CIFAR-100 teachers with
torchvision's ``AutoAugment(AutoAugmentPolicy.CIFAR10, fill=128)``. Here
the same 25 sub-policies are MMPretrain auto-augment transforms, with
torchvision's magnitude bins (10 bins; signed operations flip their sign
with probability 0.5):

- shear ``0.3 b / 9`` (shear factor), rotation ``30 b / 9`` degrees,
  brightness / color / contrast / sharpness factor ``1 + 0.9 b / 9``;
- translation ``int(150 / 331 * 32 * b / 9)`` pixels, given to MMPretrain
  as a fraction of the 32-pixel side (the policy is for 32x32 images);
- posterize ``8 - round(b / 2.25)`` bits, solarize threshold
  ``255 (1 - b / 9)``;
- geometric operations use nearest interpolation and fill 128.

Known differences: mmcv's color and contrast operations convert to grey
with BGR weights, and CIFAR arrays are RGB, so those two see slightly
different grey levels than PIL; mmcv's sharpness also filters the 1-pixel
border, which PIL leaves as is (interiors are identical).
"""
from typing import List, Optional

from mmpretrain.datasets.transforms import AutoAugment
from mmpretrain.registry import TRANSFORMS

#: torchvision's AutoAugmentPolicy.CIFAR10: ((op, prob, bin), (op, prob, bin))
CIFAR10_POLICY = (
    (('Invert', 0.1, None), ('Contrast', 0.2, 6)),
    (('Rotate', 0.7, 2), ('TranslateX', 0.3, 9)),
    (('Sharpness', 0.8, 1), ('Sharpness', 0.9, 3)),
    (('ShearY', 0.5, 8), ('TranslateY', 0.7, 9)),
    (('AutoContrast', 0.5, None), ('Equalize', 0.9, None)),
    (('ShearY', 0.2, 7), ('Posterize', 0.3, 7)),
    (('Color', 0.4, 3), ('Brightness', 0.6, 7)),
    (('Sharpness', 0.3, 9), ('Brightness', 0.7, 9)),
    (('Equalize', 0.6, None), ('Equalize', 0.5, None)),
    (('Contrast', 0.6, 7), ('Sharpness', 0.6, 5)),
    (('Color', 0.7, 7), ('TranslateX', 0.5, 8)),
    (('Equalize', 0.3, None), ('AutoContrast', 0.4, None)),
    (('TranslateY', 0.4, 3), ('Sharpness', 0.2, 6)),
    (('Brightness', 0.9, 6), ('Color', 0.2, 8)),
    (('Solarize', 0.5, 2), ('Invert', 0.0, None)),
    (('Equalize', 0.2, None), ('AutoContrast', 0.6, None)),
    (('Equalize', 0.2, None), ('Equalize', 0.6, None)),
    (('Color', 0.9, 9), ('Equalize', 0.6, None)),
    (('AutoContrast', 0.8, None), ('Solarize', 0.2, 8)),
    (('Brightness', 0.1, 3), ('Color', 0.7, 0)),
    (('Solarize', 0.4, 5), ('AutoContrast', 0.9, None)),
    (('TranslateY', 0.9, 9), ('TranslateY', 0.7, 9)),
    (('AutoContrast', 0.9, None), ('Solarize', 0.8, 3)),
    (('Equalize', 0.8, None), ('Invert', 0.1, None)),
    (('TranslateY', 0.7, 9), ('AutoContrast', 0.9, None)),
)
NUM_BINS = 10


def _op(name: str, prob: float, b: Optional[int], side: int) -> dict:
    """One torchvision operation as an MMPretrain transform config."""
    frac = b / (NUM_BINS - 1) if b is not None else 0.0
    if name in ('Invert', 'AutoContrast', 'Equalize'):
        return dict(type=name, prob=prob)
    if name in ('ShearX', 'ShearY'):
        return dict(
            type='Shear', magnitude=0.3 * frac, prob=prob,
            direction='horizontal' if name == 'ShearX' else 'vertical',
            interpolation='nearest')
    if name in ('TranslateX', 'TranslateY'):
        pixels = int(150.0 / 331.0 * side * frac)  # torchvision truncates
        return dict(
            type='Translate', magnitude=pixels / side, prob=prob,
            direction='horizontal' if name == 'TranslateX' else 'vertical',
            interpolation='nearest')
    if name == 'Rotate':
        return dict(
            type='Rotate', angle=30.0 * frac, prob=prob,
            interpolation='nearest')
    if name in ('Brightness', 'Color', 'Contrast', 'Sharpness'):
        mm_name = 'ColorTransform' if name == 'Color' else name
        return dict(type=mm_name, magnitude=0.9 * frac, prob=prob)
    if name == 'Posterize':
        return dict(type='Posterize', bits=8 - round(b / 2.25), prob=prob)
    if name == 'Solarize':
        return dict(type='Solarize', thr=255.0 * (1 - frac), prob=prob)
    raise ValueError(f'unknown AutoAugment operation {name!r}')


def cifar10_policies(side: int = 32) -> List[List[dict]]:
    """The 25 CIFAR-10 sub-policies as MMPretrain ``AutoAugment``
    policies for ``side x side`` images."""
    return [[_op(*op, side) for op in sub] for sub in CIFAR10_POLICY]


@TRANSFORMS.register_module()
class CIFAR10AutoAugment(AutoAugment):
    """MMPretrain's ``AutoAugment`` with the CIFAR-10 policy (fill 128).

    Args:
        side (int): Image side the translations are computed for.
        hparams (dict): Shared arguments of the operations; ``pad_val`` is
            the fill of the geometric ones.
    """

    def __init__(self, side: int = 32,
                 hparams: dict = dict(pad_val=128)) -> None:
        super().__init__(policies=cifar10_policies(side), hparams=hparams)
