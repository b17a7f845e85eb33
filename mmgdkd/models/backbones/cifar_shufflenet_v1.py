# Copyright (c) mmgdkd contributors. All rights reserved.
"""ShuffleNetV1 of the CIFAR knowledge-distillation benchmark.

CRD's / mdistiller's ``ShuffleV1`` (Zhang et al., 2018, groups g=3) adapted
to 32x32 inputs: a 1x1 stem at stride 1 and three stages of ShuffleNet
units, each starting at stride 2. It differs from MMPretrain's ImageNet
``ShuffleNetV1`` (3x3 stride-2 stem, max pool, other widths).
"""
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.utils import channel_shuffle

from mmgdkd.registry import register_model
from .cifar_utils import default_init_cfg, lookup_arch
from .staged_backbone import StagedBackbone

ConfigType = Optional[dict]


class ShuffleV1Unit(BaseModule):
    """ShuffleNetV1 unit: grouped 1x1, shuffle, depthwise 3x3, grouped 1x1.

    At stride 2 the residual is a 3x3 average pool of the input,
    concatenated (the unit adds ``out_channels`` channels); at stride 1 it
    is added.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Channels of the last grouped 1x1 convolution.
        stride (int): 1 or 2.
        groups (int): Groups of the 1x1 convolutions.
        group_first (bool): Group the first 1x1 (the reference does not on
            the network's first unit, whose input is the 24-channel stem).
        conv_cfg (dict, optional): Convolution config.
        norm_cfg (dict): Normalization config.

    Shape:
        ``(N, in, H, W)`` -> ``(N, out + in, H/2, W/2)`` at stride 2,
        ``(N, out, H, W)`` at stride 1 (then ``in == out``).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 groups: int,
                 group_first: bool = True,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        mid = int(out_channels / 4)
        self.stride = stride
        self.first_groups = groups if group_first else 1
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, mid, 1, groups=self.first_groups,
            bias=False)
        self.bn1 = build_norm_layer(norm_cfg, mid)[1]
        self.conv2 = build_conv_layer(
            conv_cfg, mid, mid, 3, stride, padding=1, groups=mid, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, mid)[1]
        self.conv3 = build_conv_layer(
            conv_cfg, mid, out_channels, 1, groups=groups, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1) \
            if stride == 2 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = channel_shuffle(out, self.first_groups)
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.pool is not None:
            out = torch.cat([out, self.pool(x)], 1)
        else:
            out = out + x
        return self.relu(out)


@register_model
class CIFARShuffleNetV1(StagedBackbone):
    """ShuffleNetV1 (``ShuffleV1``) of the CRD / mdistiller benchmark.

    Stem ``conv1`` (1x1, 24 channels, stride 1) - ``bn1`` - ReLU, then
    stages ``layer1..3`` whose first unit has stride 2 and concatenates.
    Module names equal the reference's (``layer{s}.{i}.conv{1,2,3}`` /
    ``bn{1,2,3}``); its ``linear`` classifier is ``head.fc`` here
    (GlobalAveragePooling + LinearClsHead on the last stage reproduce its
    4x4 average pool on CIFAR).

    Args:
        arch (str | dict): ``'shufflev1'`` (widths 240/480/960, 4/8/4
            units, g=3) or a dict with ``stage_channels``, ``num_units``
            and ``groups``.
        in_channels (int): Input channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages (0, 1, 2) to return.
            Defaults to ``(-1, )``.
        frozen_stages (int): ``-1`` nothing, ``0`` the stem, ``k`` also the
            first ``k`` stages. Defaults to -1.
        norm_eval (bool): Norm layers in eval mode in training.
        conv_cfg (dict, optional): Convolution config.
        norm_cfg (dict): Normalization config. Defaults to BN.
        init_cfg (dict | list[dict], optional): Defaults to the reference
            initialisation.

    Shape:
        ``(N, 3, 32, 32)`` -> stage ``i``: ``(N, stage_channels[i],
        16 / 2**i, 16 / 2**i)``; the last is ``(N, 960, 4, 4)``.
    """

    arch_zoo: Dict[str, dict] = {
        'shufflev1':
        dict(stage_channels=(240, 480, 960), num_units=(4, 8, 4), groups=3),
    }
    stem_names = ('conv1', 'bn1')
    stem_channels = 24

    def __init__(self,
                 arch: Union[str, dict] = 'shufflev1',
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
            arch, self.arch_zoo, 'CIFARShuffleNetV1 arch')
        self.arch = arch
        self.stage_channels = tuple(setting['stage_channels'])
        groups = setting['groups']
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, self.stem_channels, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, self.stem_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        c_in = self.stem_channels
        for s, (width, n) in enumerate(
                zip(self.stage_channels, setting['num_units'])):
            units = []
            for i in range(n):
                units.append(
                    ShuffleV1Unit(
                        c_in,
                        width - c_in if i == 0 else width,
                        stride=2 if i == 0 else 1,
                        groups=groups,
                        group_first=c_in != self.stem_channels,
                        conv_cfg=conv_cfg,
                        norm_cfg=norm_cfg))
                c_in = width
            name = f'layer{s + 1}'
            self.add_module(name, nn.Sequential(*units))
            self.stages.append((name, ))
        self._setup_stages(out_indices, frozen_stages, norm_eval)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))
