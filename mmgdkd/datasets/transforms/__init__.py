# Copyright (c) mmgdkd contributors. All rights reserved.
"""Data transforms of the augmented CIFAR teachers (registered into
MMPretrain's ``TRANSFORMS`` on import; configs list this module in
``custom_imports``)."""
from .cifar_autoaugment import CIFAR10AutoAugment, cifar10_policies
from .cutout import CenterCutout

__all__ = ['CIFAR10AutoAugment', 'cifar10_policies', 'CenterCutout']
