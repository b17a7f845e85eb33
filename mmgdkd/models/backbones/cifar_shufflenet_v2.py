# Copyright (c) mmgdkd contributors. All rights reserved.
"""ShuffleNetV2 of the CIFAR knowledge-distillation benchmark.

CRD's / mdistiller's ``ShuffleV2`` (Ma et al., 2018, width 1x) adapted to
32x32 inputs: a 1x1 stem at stride 1 (no max pool), three stages each
opened by a stride-2 down-sampling unit, and a final 1x1 convolution to
1024 channels. It differs from MMPretrain's ImageNet ``ShuffleNetV2`` in
the stem and in the number of units per stage.
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


def _conv_bn(conv_cfg: ConfigType, norm_cfg: dict, c_in: int, c_out: int,
             kernel: int, stride: int = 1, groups: int = 1):
    conv = build_conv_layer(
        conv_cfg, c_in, c_out, kernel, stride, padding=kernel // 2,
        groups=groups, bias=False)
    return conv, build_norm_layer(norm_cfg, c_out)[1]


class ShuffleV2Unit(BaseModule):
    """Stride-1 ShuffleNetV2 unit: half the channels pass, the other half
    go through 1x1 - depthwise 3x3 - 1x1; concatenate, shuffle (g=2).

    Shape: ``(N, C, H, W)`` -> ``(N, C, H, W)``.
    """

    def __init__(self,
                 channels: int,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        self.split = int(channels * 0.5)
        c = self.split
        self.conv1, self.bn1 = _conv_bn(conv_cfg, norm_cfg, c, c, 1)
        self.conv2, self.bn2 = _conv_bn(conv_cfg, norm_cfg, c, c, 3, groups=c)
        self.conv3, self.bn3 = _conv_bn(conv_cfg, norm_cfg, c, c, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[:, :self.split], x[:, self.split:]
        out = self.relu(self.bn1(self.conv1(x2)))
        out = self.bn2(self.conv2(out))
        out = self.relu(self.bn3(self.conv3(out)))
        return channel_shuffle(torch.cat([x1, out], 1), 2)


class ShuffleV2DownUnit(BaseModule):
    """Stride-2 ShuffleNetV2 unit: two branches (depthwise 3x3 s2 - 1x1;
    1x1 - depthwise 3x3 s2 - 1x1) of ``out/2`` channels, concatenated and
    shuffled (g=2).

    Shape: ``(N, in, H, W)`` -> ``(N, out, H/2, W/2)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        mid = out_channels // 2
        c = in_channels
        self.conv1, self.bn1 = _conv_bn(conv_cfg, norm_cfg, c, c, 3, 2, c)
        self.conv2, self.bn2 = _conv_bn(conv_cfg, norm_cfg, c, mid, 1)
        self.conv3, self.bn3 = _conv_bn(conv_cfg, norm_cfg, c, mid, 1)
        self.conv4, self.bn4 = _conv_bn(conv_cfg, norm_cfg, mid, mid, 3, 2,
                                        mid)
        self.conv5, self.bn5 = _conv_bn(conv_cfg, norm_cfg, mid, mid, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = self.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = self.relu(self.bn3(self.conv3(x)))
        right = self.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        return channel_shuffle(torch.cat([left, right], 1), 2)


@register_model
class CIFARShuffleNetV2(StagedBackbone):
    """ShuffleNetV2 (``ShuffleV2``) of the CRD / mdistiller benchmark.

    Stem ``conv1`` (1x1, 24 channels) - ``bn1`` - ReLU; stages
    ``layer1..3``, each a down-sampling unit then ``num_units`` stride-1
    units; a fourth stage, the 1x1 ``conv2`` - ``bn2`` - ReLU to
    ``stage_channels[3]``. Module names equal the reference's; its
    ``linear`` classifier is ``head.fc`` here (GlobalAveragePooling +
    LinearClsHead on the last stage reproduce its 4x4 average pool).

    Args:
        arch (str | dict): ``'shufflev2'`` (net size 1: widths
            116/232/464/1024, 3/7/3 units) or a dict with
            ``stage_channels`` (4 ints) and ``num_units`` (3 ints).
        in_channels (int): Input channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages (0..3; 3 is the final
            1x1 convolution) to return. Defaults to ``(-1, )``.
        frozen_stages (int): ``-1`` nothing, ``0`` the stem, ``k`` also the
            first ``k`` stages. Defaults to -1.
        norm_eval (bool): Norm layers in eval mode in training.
        conv_cfg (dict, optional): Convolution config.
        norm_cfg (dict): Normalization config. Defaults to BN.
        init_cfg (dict | list[dict], optional): Defaults to the reference
            initialisation.

    Shape:
        ``(N, 3, 32, 32)`` -> stage ``i < 3``: ``(N, stage_channels[i],
        16 / 2**i, 16 / 2**i)``; stage 3: ``(N, 1024, 4, 4)``.
    """

    arch_zoo: Dict[str, dict] = {
        'shufflev2':
        dict(stage_channels=(116, 232, 464, 1024), num_units=(3, 7, 3)),
    }
    stem_names = ('conv1', 'bn1')
    stem_channels = 24

    def __init__(self,
                 arch: Union[str, dict] = 'shufflev2',
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
            arch, self.arch_zoo, 'CIFARShuffleNetV2 arch')
        self.arch = arch
        self.stage_channels = tuple(setting['stage_channels'])
        if len(self.stage_channels) != 4:
            raise ValueError('CIFARShuffleNetV2 stage_channels must give 3 '
                             'stage widths and the final width, got '
                             f'{self.stage_channels}.')
        self.conv1, self.bn1 = _conv_bn(conv_cfg, norm_cfg, in_channels,
                                        self.stem_channels, 1)
        self.relu = nn.ReLU(inplace=True)
        c_in = self.stem_channels
        for s, (width, n) in enumerate(
                zip(self.stage_channels[:3], setting['num_units'])):
            units = [ShuffleV2DownUnit(c_in, width, conv_cfg, norm_cfg)]
            units += [
                ShuffleV2Unit(width, conv_cfg, norm_cfg) for _ in range(n)
            ]
            c_in = width
            name = f'layer{s + 1}'
            self.add_module(name, nn.Sequential(*units))
            self.stages.append((name, ))
        self.conv2, self.bn2 = _conv_bn(conv_cfg, norm_cfg, c_in,
                                        self.stage_channels[3], 1)
        self.stages.append(('conv2', 'bn2', 'relu'))
        self._setup_stages(out_indices, frozen_stages, norm_eval)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))
