# Copyright (c) mmgdkd contributors. All rights reserved.
"""The CIFAR Wide ResNets of the knowledge-distillation literature.

``wrn_16_2``, ``wrn_40_1`` and ``wrn_40_2`` of CRD (Tian et al., ICLR 2020)
and mdistiller (DKD, Zhao et al., CVPR 2022): Zagoruyko & Komodakis' WRN-d-k
with pre-activation (BN-ReLU-conv) basic blocks, a plain 3x3 stem, stage
widths ``(16k, 32k, 64k)`` and a final BN-ReLU before pooling.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model import BaseModule
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from mmgdkd.registry import register_model
from .cifar_utils import (default_init_cfg, freeze_modules, lookup_arch,
                          normalize_out_indices, set_norm_eval)

ConfigType = Optional[dict]


class CIFARWideBasicBlock(BaseModule):
    """Pre-activation 3x3-3x3 residual block of a Wide ResNet.

    ``BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3`` plus a shortcut. When the
    shape changes, a 1x1 projection of the *pre-activated* input replaces
    the identity, as in the original WRN code the reference follows.

    The projection keeps the reference's attribute name ``convShortcut``:
    renaming it would change the checkpoint keys and stop the published
    teacher weights from loading.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first convolution. Defaults to 1.
        drop_rate (float): Dropout probability between the two convolutions
            (training only). Defaults to 0.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalization config. Defaults to ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): Initialization config.

    Shape:
        ``(N, in_channels, H, W)`` -> ``(N, out_channels, H / stride,
        W / stride)``; the output is *not* normalised or activated.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 drop_rate: float = 0.0,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: ConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.bn1 = build_norm_layer(norm_cfg, in_channels)[1]
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = build_conv_layer(
            conv_cfg,
            in_channels,
            out_channels,
            3,
            stride,
            padding=1,
            bias=False)
        self.bn2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = build_conv_layer(
            conv_cfg, out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.drop_rate = drop_rate
        # The reference only tests the channel counts; a stride alone would
        # break its identity shortcut, so it is also projected here (never
        # the case for the named archs, whose strided blocks widen).
        self.convShortcut: Optional[nn.Module] = None
        if in_channels != out_channels or stride != 1:
            self.convShortcut = build_conv_layer(
                conv_cfg, in_channels, out_channels, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        shortcut = x if self.convShortcut is None else self.convShortcut(act)
        out = self.relu2(self.bn2(self.conv1(act)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        out = self.conv2(out)
        return out + shortcut


class CIFARWideResLayer(BaseModule):
    """One WRN stage: ``num_blocks`` blocks, the first one strided.

    The blocks sit in ``self.layer`` (not directly in this module) so that
    parameter names match the reference's ``block{i}.layer.{j}.*``.

    Args:
        num_blocks (int): Number of blocks.
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of the first block.
        drop_rate (float): Dropout probability inside every block.
        conv_cfg (dict, optional): Convolution config.
        norm_cfg (dict): Normalization config.
        init_cfg (dict | list[dict], optional): Initialization config.
    """

    def __init__(self,
                 num_blocks: int,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 drop_rate: float = 0.0,
                 conv_cfg: ConfigType = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: ConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.layer = nn.Sequential(*[
            CIFARWideBasicBlock(
                in_channels if i == 0 else out_channels,
                out_channels,
                stride if i == 0 else 1,
                drop_rate,
                conv_cfg=conv_cfg,
                norm_cfg=norm_cfg) for i in range(num_blocks)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


@register_model
class CIFARWideResNet(BaseBackbone):
    """CIFAR Wide ResNet WRN-depth-widen_factor (Zagoruyko & Komodakis).

    A plain 3x3 convolution (16 channels, no norm) followed by three stages
    of ``n = (depth - 4) / 6`` pre-activation blocks with widths
    ``16k, 32k, 64k`` and strides 1, 2, 2, then BN-ReLU.

    Because the blocks are pre-activation, a raw stage output is not yet
    normalised: outputs of stages 0 and 1 are returned raw (the reference's
    ``feats``), while the last stage is returned after the final BN-ReLU,
    i.e. exactly the tensor the reference average-pools into its linear
    classifier. ``GlobalAveragePooling`` + ``LinearClsHead`` on top
    therefore reproduce the reference classifier.

    Module names equal the reference's (``conv1``, ``block{1,2,3}.layer.
    {j}.{bn1,conv1,bn2,conv2,convShortcut}``, final ``bn1``), so the
    published CIFAR-100 teacher checkpoints load into the backbone once
    their ``fc.*`` entries go to the head.

    Args:
        arch (str, optional): One of :attr:`arch_zoo` (``'wrn_16_1'``,
            ``'wrn_16_2'``, ``'wrn_40_1'``, ``'wrn_40_2'``). Give either
            ``arch`` or ``depth`` (and ``widen_factor``), not both.
        depth (int, optional): Network depth, ``6n + 4`` with ``n >= 1``.
        widen_factor (int, optional): Width multiplier ``k``; defaults to 1
            when ``depth`` is given.
        drop_rate (float): Dropout probability inside the blocks. The
            benchmark models use 0. Defaults to 0.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages (0, 1, 2; negative values
            count from the end) whose outputs are returned. Defaults to
            ``(-1, )``.
        frozen_stages (int): ``-1`` freezes nothing, ``0`` the stem conv,
            ``k`` the stem and the first ``k`` stages (``3`` includes the
            final BN). Frozen modules are in eval mode without gradients.
            Defaults to -1.
        norm_eval (bool): Keep every norm layer in eval mode during training.
            Defaults to False.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict): Normalization config. Defaults to ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to the reference initialisation (Kaiming-normal
            fan-out convolutions, unit norms).

    Shape:
        - Input: ``(N, in_channels, H, W)``, ``H = W = 32`` on CIFAR.
        - Output: a tuple with, for each selected stage ``i``, a tensor
          ``(N, stage_channels[i], H / 2**i, W / 2**i)``; e.g. for
          ``wrn_40_2`` on CIFAR the last stage gives ``(N, 128, 8, 8)``.

    Example:
        >>> import torch
        >>> from mmgdkd.models.backbones import CIFARWideResNet
        >>> model = CIFARWideResNet('wrn_40_2', out_indices=(0, 1, 2))
        >>> [tuple(f.shape) for f in model(torch.rand(2, 3, 32, 32))]
        [(2, 32, 32, 32), (2, 64, 16, 16), (2, 128, 8, 8)]
    """

    arch_zoo: Dict[str, dict] = {
        'wrn_16_1': dict(depth=16, widen_factor=1),
        'wrn_16_2': dict(depth=16, widen_factor=2),
        'wrn_40_1': dict(depth=40, widen_factor=1),
        'wrn_40_2': dict(depth=40, widen_factor=2),
    }
    num_stages = 3

    def __init__(self,
                 arch: Optional[str] = None,
                 depth: Optional[int] = None,
                 widen_factor: Optional[int] = None,
                 drop_rate: float = 0.0,
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
        if arch is not None:
            if depth is not None or widen_factor is not None:
                raise ValueError('CIFARWideResNet takes either arch or '
                                 'depth/widen_factor, not both.')
            setting = lookup_arch(arch, self.arch_zoo, 'CIFARWideResNet arch')
            depth, widen_factor = setting['depth'], setting['widen_factor']
        elif depth is None:
            raise ValueError('CIFARWideResNet needs arch (one of '
                             f'{", ".join(map(repr, self.arch_zoo))}) or '
                             'depth.')
        widen_factor = 1 if widen_factor is None else widen_factor
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(
                f'CIFARWideResNet depth must be 6n + 4 (n >= 1), got {depth}.')
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, '
                             f'{self.num_stages}], got {frozen_stages}.')
        num_blocks = (depth - 4) // 6

        self.arch = arch
        self.depth = depth
        self.widen_factor = widen_factor
        self.drop_rate = drop_rate
        self.out_indices = normalize_out_indices(out_indices, self.num_stages)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        stem_channels = 16
        self.stage_channels = tuple(w * widen_factor for w in (16, 32, 64))

        # No norm or activation here: the first block pre-activates.
        self.conv1 = build_conv_layer(
            conv_cfg, in_channels, stem_channels, 3, 1, padding=1, bias=False)
        self.res_layers: List[str] = []
        stage_in = stem_channels
        strides = (1, 2, 2)
        for i, channels in enumerate(self.stage_channels):
            name = f'block{i + 1}'
            self.add_module(
                name,
                CIFARWideResLayer(num_blocks, stage_in, channels, strides[i],
                                  drop_rate, conv_cfg, norm_cfg))
            self.res_layers.append(name)
            stage_in = channels
        # Closes the last pre-activation block; named as in the reference.
        self.bn1 = build_norm_layer(norm_cfg, stage_in)[1]
        self.relu = nn.ReLU(inplace=True)

        self._freeze_stages()

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            freeze_modules([self.conv1])
        freeze_modules(
            getattr(self, name)
            for name in self.res_layers[:max(self.frozen_stages, 0)])
        if self.frozen_stages == self.num_stages:
            freeze_modules([self.bn1])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward an image batch.

        Args:
            x (torch.Tensor): Images, ``(N, in_channels, H, W)``.

        Returns:
            tuple[torch.Tensor]: Outputs of the stages in ``out_indices``,
            stage ``i`` shaped ``(N, stage_channels[i], H / 2**i,
            W / 2**i)``; raw for stages 0 and 1, after the final BN-ReLU for
            stage 2.
        """
        x = self.conv1(x)
        outs = []
        last = self.num_stages - 1
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i == last:
                x = self.relu(self.bn1(x))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'CIFARWideResNet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            set_norm_eval(self)
        return self
