# Copyright (c) mmgdkd contributors. All rights reserved.
"""The CIFAR ResNets of the knowledge-distillation literature.

These are the ``resnet20/32/56/110`` and ``resnet8x4/32x4`` models of CRD
(Tian et al., ICLR 2020) and mdistiller (DKD, Zhao et al., CVPR 2022): He et
al.'s CIFAR ResNet with a 3x3 stem and three stages, widths
``(16, 16, 32, 64)`` or, for the ``x4`` variants, ``(32, 64, 128, 256)``.
They differ from MMPretrain's ``ResNet_CIFAR`` (an ImageNet ResNet with a
3x3 stem) in depth, width and number of stages.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from mmgdkd.registry import register_model
from .cifar_utils import (default_init_cfg, freeze_modules, lookup_arch,
                          normalize_out_indices, set_norm_eval)

ConfigType = Optional[dict]


class CIFARBasicBlock(BaseModule):
    """Post-activation 3x3-3x3 residual block (He et al., 2016).

    Args:
        in_channels (int): Input channels.
        planes (int): Output channels of both convolutions.
        stride (int): Stride of the first convolution. Defaults to 1.
        downsample (nn.Module, optional): Projection of the identity when the
            shape changes. Defaults to None.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalization config. Defaults to ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): Initialization config.

    Shape:
        ``(N, in_channels, H, W)`` -> ``(N, planes, H / stride, W / stride)``.
    """

    expansion = 1

    def __init__(self,
                 in_channels: int,
                 planes: int,
                 stride: int = 1,
                 downsample: Optional[nn.Module] = None,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: ConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, planes, 3, stride, padding=1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, planes)[1]
        self.conv2 = build_conv_layer(
            conv_cfg, planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, planes)[1]
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class CIFARBottleneck(BaseModule):
    """Post-activation 1x1-3x3-1x1 residual block with 4x expansion.

    Unused by the named archs; kept so that ``arch=dict(block='bottleneck')``
    builds the reference's ``9n + 2``-deep bottleneck variant.

    Args:
        in_channels (int): Input channels.
        planes (int): Bottleneck channels; the output has ``4 * planes``.
        stride (int): Stride of the 3x3 convolution. Defaults to 1.
        downsample (nn.Module, optional): Projection of the identity when the
            shape changes. Defaults to None.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalization config. Defaults to ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): Initialization config.

    Shape:
        ``(N, in_channels, H, W)`` -> ``(N, 4 * planes, H / stride,
        W / stride)``.
    """

    expansion = 4

    def __init__(self,
                 in_channels: int,
                 planes: int,
                 stride: int = 1,
                 downsample: Optional[nn.Module] = None,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: ConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        out_channels = planes * self.expansion
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, planes, 1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, planes)[1]
        self.conv2 = build_conv_layer(
            conv_cfg, planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, planes)[1]
        self.conv3 = build_conv_layer(
            conv_cfg, planes, out_channels, 1, bias=False)
        self.bn3 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_BLOCKS: Dict[str, Type[BaseModule]] = {
    'basic': CIFARBasicBlock,
    'bottleneck': CIFARBottleneck,
}


@register_model
class CIFARResNet(BaseBackbone):
    """CIFAR ResNet of the CRD / mdistiller knowledge-distillation benchmark.

    A 3x3 stem (conv-BN-ReLU, stride 1) followed by three stages of residual
    blocks with strides 1, 2, 2; depth ``6n + 2`` with basic blocks (``n``
    blocks per stage) or ``9n + 2`` with bottlenecks.

    Every returned feature map is a stage output *after* its final ReLU.
    The last one is what the reference model average-pools and feeds to its
    linear classifier, so ``GlobalAveragePooling`` + ``LinearClsHead`` on
    top reproduce the reference classifier exactly. (The reference also
    exposes pre-ReLU stage outputs for feature distillation; they are not
    returned here.)

    Module names (``conv1``, ``bn1``, ``layer{1,2,3}.{i}.conv1``, ...,
    ``downsample.{0,1}``) equal the reference's, so the published CIFAR-100
    teacher checkpoints load into the backbone once their ``fc.*`` entries
    go to the head.

    Args:
        arch (str | dict): One of :attr:`arch_zoo` (``'resnet8x4'``,
            ``'resnet32x4'``, ``'resnet20'``, ``'resnet32'``,
            ``'resnet56'``, ``'resnet110'``, ...) or a dict with keys
            ``depth`` (int), ``widths`` (4 ints: stem and stage widths) and
            optionally ``block`` (``'basic'`` or ``'bottleneck'``).
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages (0, 1, 2; negative values
            count from the end) whose outputs are returned. Defaults to
            ``(-1, )``, the last stage.
        frozen_stages (int): ``-1`` freezes nothing, ``0`` the stem, ``k``
            the stem and the first ``k`` stages (eval mode, no gradients).
            Defaults to -1.
        norm_eval (bool): Keep every norm layer in eval mode during training
            (frozen statistics). Defaults to False.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalization config, e.g. ``dict(type='SyncBN')``
            for multi-GPU training. Defaults to ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to the reference initialisation (Kaiming-normal
            fan-out convolutions, unit norms).

    Shape:
        - Input: ``(N, in_channels, H, W)``, ``H = W = 32`` on CIFAR.
        - Output: a tuple with, for each selected stage ``i``, a tensor
          ``(N, stage_channels[i], H / 2**i, W / 2**i)``; e.g. for
          ``resnet8x4`` on CIFAR the last stage gives ``(N, 256, 8, 8)``.

    Example:
        >>> import torch
        >>> from mmgdkd.models.backbones import CIFARResNet
        >>> model = CIFARResNet('resnet8x4', out_indices=(0, 1, 2))
        >>> [tuple(f.shape) for f in model(torch.rand(2, 3, 32, 32))]
        [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8)]
    """

    arch_zoo: Dict[str, dict] = {
        'resnet8': dict(depth=8, widths=(16, 16, 32, 64)),
        'resnet14': dict(depth=14, widths=(16, 16, 32, 64)),
        'resnet20': dict(depth=20, widths=(16, 16, 32, 64)),
        'resnet32': dict(depth=32, widths=(16, 16, 32, 64)),
        'resnet44': dict(depth=44, widths=(16, 16, 32, 64)),
        'resnet56': dict(depth=56, widths=(16, 16, 32, 64)),
        'resnet110': dict(depth=110, widths=(16, 16, 32, 64)),
        'resnet8x4': dict(depth=8, widths=(32, 64, 128, 256)),
        'resnet32x4': dict(depth=32, widths=(32, 64, 128, 256)),
    }
    num_stages = 3

    def __init__(self,
                 arch: Union[str, dict],
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        if init_cfg is None:
            init_cfg = default_init_cfg()
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, dict):
            setting = dict(arch)
        else:
            setting = dict(
                lookup_arch(arch, self.arch_zoo, 'CIFARResNet arch'))
        block_name = setting.get('block', 'basic')
        block = lookup_arch(block_name, _BLOCKS, 'CIFARResNet block')
        depth = setting['depth']
        widths = tuple(setting['widths'])
        if len(widths) != 1 + self.num_stages:
            raise ValueError('CIFARResNet widths must give the stem and '
                             f'{self.num_stages} stage widths, got {widths}.')
        convs_per_block = 2 if block is CIFARBasicBlock else 3
        layers_per_depth = convs_per_block * self.num_stages
        if depth < 2 + layers_per_depth or (depth - 2) % layers_per_depth:
            raise ValueError(
                f'CIFARResNet with {block_name} blocks needs depth '
                f'{layers_per_depth}n + 2 (n >= 1), got {depth}.')
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, '
                             f'{self.num_stages}], got {frozen_stages}.')
        num_blocks = (depth - 2) // layers_per_depth

        self.arch = arch
        self.depth = depth
        self.out_indices = normalize_out_indices(out_indices, self.num_stages)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.stage_channels = tuple(w * block.expansion for w in widths[1:])

        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, widths[0], 3, 1, padding=1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, widths[0])[1]
        self.relu = nn.ReLU(inplace=True)

        self.res_layers: List[str] = []
        stage_in = widths[0]
        for i, (planes, stride) in enumerate(zip(widths[1:], (1, 2, 2))):
            layer = self._make_res_layer(block, stage_in, planes, num_blocks,
                                         stride, conv_cfg, norm_cfg)
            stage_in = planes * block.expansion
            name = f'layer{i + 1}'
            self.add_module(name, layer)
            self.res_layers.append(name)

        self._freeze_stages()

    @staticmethod
    def _make_res_layer(block: Type[BaseModule], in_channels: int, planes: int,
                        num_blocks: int, stride: int, conv_cfg: ConfigType,
                        norm_cfg: dict) -> nn.Sequential:
        """Build one stage; only its first block strides and projects."""
        out_channels = planes * block.expansion
        downsample = None
        if stride != 1 or in_channels != out_channels:
            downsample = nn.Sequential(
                build_conv_layer(
                    conv_cfg, in_channels, out_channels, 1, stride,
                    bias=False),
                build_norm_layer(norm_cfg, out_channels)[1])
        blocks = [
            block(in_channels, planes, stride, downsample, conv_cfg, norm_cfg)
        ]
        blocks += [
            block(out_channels, planes, 1, None, conv_cfg, norm_cfg)
            for _ in range(1, num_blocks)
        ]
        return nn.Sequential(*blocks)

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            freeze_modules([self.conv1, self.bn1])
        freeze_modules(
            getattr(self, name)
            for name in self.res_layers[:max(self.frozen_stages, 0)])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward an image batch.

        Args:
            x (torch.Tensor): Images, ``(N, in_channels, H, W)``.

        Returns:
            tuple[torch.Tensor]: The post-ReLU outputs of the stages in
            ``out_indices``, stage ``i`` shaped
            ``(N, stage_channels[i], H / 2**i, W / 2**i)``.
        """
        x = self.relu(self.bn1(self.conv1(x)))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'CIFARResNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            set_norm_eval(self)
        return self
