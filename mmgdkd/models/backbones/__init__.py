# Copyright (c) mmgdkd contributors. All rights reserved.
from .cifar_resnet import CIFARResNet
from .cifar_vgg import CIFARVGG
from .cifar_wrn import CIFARWideResNet

__all__ = ['CIFARResNet', 'CIFARWideResNet', 'CIFARVGG']
