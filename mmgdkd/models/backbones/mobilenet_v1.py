# Copyright (c) mmgdkd contributors. All rights reserved.
"""MobileNetV1 (Howard et al., 2017) as in the ImageNet KD benchmark.

The ``MobileNetV1`` of mdistiller / the GDKD authors (ResNet-50 ->
MobileNetV1 on ImageNet, and the transfer-learning runs): a stride-2
conv-BN-ReLU stem and 13 depthwise-separable blocks (depthwise 3x3 - BN -
ReLU - pointwise 1x1 - BN - ReLU), width 1.0, ReLU (not ReLU6). MMPretrain
has no MobileNetV1.
"""
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer

from mmgdkd.registry import register_model
from .cifar_utils import default_init_cfg
from .staged_backbone import StagedBackbone

ConfigType = Optional[dict]

#: (output channels, stride) of the 13 depthwise-separable blocks
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2),
           (1024, 1))


@register_model
class MobileNetV1(StagedBackbone):
    """MobileNetV1 with the reference module names (``model.{i}.{j}``).

    ``model.0`` is the stem (3x3 stride 2 to 32 channels, conv-BN-ReLU);
    ``model.1`` .. ``model.13`` are the stages, each one
    depthwise-separable block (``.0`` depthwise conv, ``.1`` BN, ``.3``
    pointwise conv, ``.4`` BN). The reference's final ``AvgPool2d(7)`` and
    ``fc`` are the GlobalAveragePooling neck and ``head.fc`` here.

    Args:
        in_channels (int): Input channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages (0..12, the blocks) to
            return. Defaults to ``(-1, )``.
        frozen_stages (int): ``-1`` nothing, ``0`` the stem, ``k`` also the
            first ``k`` blocks. Defaults to -1.
        norm_eval (bool): Norm layers in eval mode in training.
        conv_cfg (dict, optional): Convolution config.
        norm_cfg (dict): Normalization config. Defaults to BN.
        init_cfg (dict | list[dict], optional): Defaults to Kaiming-normal
            fan-out convolutions and unit norms.

    Shape:
        ``(N, 3, 224, 224)`` -> last stage ``(N, 1024, 7, 7)``.
    """

    stem_names = ('model.0', )

    def __init__(self,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg=None) -> None:
        super().__init__(
            init_cfg=default_init_cfg() if init_cfg is None else init_cfg)
        layers = [
            nn.Sequential(
                build_conv_layer(
                    conv_cfg, in_channels, 32, 3, 2, padding=1, bias=False),
                build_norm_layer(norm_cfg, 32)[1], nn.ReLU(inplace=True))
        ]
        c_in = 32
        for c_out, stride in _BLOCKS:
            layers.append(
                nn.Sequential(
                    build_conv_layer(
                        conv_cfg, c_in, c_in, 3, stride, padding=1,
                        groups=c_in, bias=False),
                    build_norm_layer(norm_cfg, c_in)[1],
                    nn.ReLU(inplace=True),
                    build_conv_layer(conv_cfg, c_in, c_out, 1, bias=False),
                    build_norm_layer(norm_cfg, c_out)[1],
                    nn.ReLU(inplace=True)))
            c_in = c_out
        self.model = nn.Sequential(*layers)
        self.stages = [(f'model.{i}', ) for i in range(1, len(layers))]
        self.stage_channels = tuple(c for c, _ in _BLOCKS)
        self._setup_stages(out_indices, frozen_stages, norm_eval)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.model[0](x)
