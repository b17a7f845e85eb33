# Copyright (c) mmgdkd contributors. All rights reserved.
"""MobileNetV2 of the CIFAR knowledge-distillation benchmark.

CRD's / mdistiller's ``MobileNetV2`` (``mobile_half``: expansion 6, width
0.5) on 32x32 inputs: a stride-2 3x3 stem, seven groups of inverted
residual blocks (strides 1, 1, 2, 2, 1, 2, 1), a 1x1 convolution to 1280
channels. It differs from MMPretrain's ``MobileNetV2`` in the strides, in
the channel rounding (``int(c * width)``, no rounding to 8), in ReLU instead
of ReLU6, and in keeping the expansion 1x1 of the first block.
"""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule

from mmgdkd.registry import register_model
from .cifar_utils import default_init_cfg, lookup_arch
from .staged_backbone import StagedBackbone

ConfigType = Optional[dict]

#: (expansion or None for the arch's, output channels, blocks, stride)
_SETTING = ((1, 16, 1, 1), (None, 24, 2, 1), (None, 32, 3, 2),
            (None, 64, 4, 2), (None, 96, 3, 1), (None, 160, 3, 2),
            (None, 320, 1, 1))


def conv_bn_relu(conv_cfg: ConfigType, norm_cfg: dict, c_in: int, c_out: int,
                 kernel: int, stride: int = 1) -> nn.Sequential:
    """``conv - BN - ReLU`` with the reference indices 0, 1, 2."""
    return nn.Sequential(
        build_conv_layer(
            conv_cfg, c_in, c_out, kernel, stride, padding=kernel // 2,
            bias=False),
        build_norm_layer(norm_cfg, c_out)[1], nn.ReLU(inplace=True))


class CIFARInvertedResidual(BaseModule):
    """1x1 expand - BN - ReLU - depthwise 3x3 - BN - ReLU - 1x1 - BN, in one
    ``conv`` sequence (reference indices 0..7); the input is added when the
    stride is 1 and the widths agree.

    Shape: ``(N, in, H, W)`` -> ``(N, out, H / stride, W / stride)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 expand_ratio: int,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f'stride must be 1 or 2, got {stride}')
        hidden = in_channels * expand_ratio
        self.use_res_connect = stride == 1 and in_channels == out_channels
        self.conv = nn.Sequential(
            build_conv_layer(conv_cfg, in_channels, hidden, 1, bias=False),
            build_norm_layer(norm_cfg, hidden)[1], nn.ReLU(inplace=True),
            build_conv_layer(
                conv_cfg, hidden, hidden, 3, stride, padding=1,
                groups=hidden, bias=False),
            build_norm_layer(norm_cfg, hidden)[1], nn.ReLU(inplace=True),
            build_conv_layer(conv_cfg, hidden, out_channels, 1, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


@register_model
class CIFARMobileNetV2(StagedBackbone):
    """MobileNetV2 (``mobile_half``) of the CRD / mdistiller benchmark.

    Stem ``conv1`` (3x3 stride 2, conv-BN-ReLU); stages ``blocks.0`` ..
    ``blocks.6`` (inverted residual groups); stage 7 ``conv2`` (1x1 to
    ``last_channels``, conv-BN-ReLU). Module names equal the reference's;
    its ``classifier.0`` is ``head.fc`` here (GlobalAveragePooling +
    LinearClsHead reproduce its ceil-mode average pool over the 2x2 map).

    Args:
        arch (str | dict): ``'mobile_half'`` (expansion 6, width 0.5) or a
            dict with ``expand_ratio`` and ``width``.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages (0..7; 7 is ``conv2``) to
            return. Defaults to ``(-1, )``.
        frozen_stages (int): ``-1`` nothing, ``0`` the stem, ``k`` also the
            first ``k`` stages. Defaults to -1.
        norm_eval (bool): Norm layers in eval mode in training.
        conv_cfg (dict, optional): Convolution config.
        norm_cfg (dict): Normalization config. Defaults to BN.
        init_cfg (dict | list[dict], optional): Defaults to the reference
            initialisation (Kaiming-normal fan-out convs, unit BN).

    Shape:
        ``(N, 3, 32, 32)`` -> stage 7: ``(N, 1280, 2, 2)``; stages 0..6 have
        ``stage_channels[i]`` channels at sides 16, 16, 8, 4, 4, 2, 2.
    """

    arch_zoo: Dict[str, dict] = {
        'mobile_half': dict(expand_ratio=6, width=0.5),
    }
    stem_names = ('conv1', )

    def __init__(self,
                 arch: Union[str, dict] = 'mobile_half',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg=None) -> None:
        super().__init__(
            init_cfg=default_init_cfg() if init_cfg is None else init_cfg)
        setting = dict(arch) if isinstance(arch, dict) else lookup_arch(
            arch, self.arch_zoo, 'CIFARMobileNetV2 arch')
        self.arch = arch
        width, expand = setting['width'], setting['expand_ratio']
        c_in = int(32 * width)
        self.conv1 = conv_bn_relu(conv_cfg, norm_cfg, in_channels, c_in, 3, 2)
        self.blocks = nn.ModuleList()
        channels = []
        for i, (t, c, n, s) in enumerate(_SETTING):
            c_out = int(c * width)
            layers = []
            for stride in [s] + [1] * (n - 1):
                layers.append(
                    CIFARInvertedResidual(c_in, c_out, stride,
                                          expand if t is None else t,
                                          conv_cfg, norm_cfg))
                c_in = c_out
            self.blocks.append(nn.Sequential(*layers))
            self.stages.append((f'blocks.{i}', ))
            channels.append(c_out)
        # the reference widens the last conv only for width > 1
        self.last_channels = int(1280 * width) if width > 1.0 else 1280
        self.conv2 = conv_bn_relu(conv_cfg, norm_cfg, c_in,
                                  self.last_channels, 1)
        self.stages.append(('conv2', ))
        self.stage_channels = tuple(channels) + (self.last_channels, )
        self._setup_stages(out_indices, frozen_stages, norm_eval)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1(x)
