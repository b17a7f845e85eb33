# Copyright (c) mmgdkd contributors. All rights reserved.
"""The CIFAR VGGs of the knowledge-distillation literature.

``vgg8`` and ``vgg13`` of CRD (Tian et al., ICLR 2020) and mdistiller (DKD,
Zhao et al., CVPR 2022), whose model tables map these names to the
batch-normalised VGGs: five stages of 3x3 conv-BN-ReLU layers, max pooling
between the first four stages, and a single 512-to-classes linear layer on
the globally average-pooled last stage instead of VGG's three FC layers.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmpretrain.models.backbones.base_backbone import BaseBackbone

from mmgdkd.registry import register_model
from .cifar_utils import (default_init_cfg, freeze_modules, lookup_arch,
                          normalize_out_indices, set_norm_eval)

ConfigType = Optional[dict]


@register_model
class CIFARVGG(BaseBackbone):
    """CIFAR VGG of the CRD / mdistiller knowledge-distillation benchmark.

    Stage ``i`` is a stack of ``conv3x3 (with bias) - BN - ReLU`` layers
    with the widths of ``arch_zoo[arch][i]``. A 2x2 max pool precedes
    stages 1, 2 and 3. Before stage 4 the reference pools only 64x64 inputs
    (Tiny-ImageNet), so on 32x32 CIFAR images stages 3 and 4 both run at
    4x4; ``downsample_last_stage`` reproduces or overrides that rule.

    Every returned feature map is a stage output after its last ReLU. The
    last one, average-pooled, is the 512-d input of the reference's linear
    classifier, so ``GlobalAveragePooling`` + ``LinearClsHead(in_channels=
    512)`` reproduce the reference classifier.

    Module names equal the reference's (``block{i}.{j}`` indexing the
    conv/BN/ReLU sequence), so the published CIFAR-100 teacher checkpoints
    load into the backbone once their ``classifier.*`` entries go to the
    head.

    Args:
        arch (str): One of :attr:`arch_zoo`: ``'vgg8'``, ``'vgg11'``,
            ``'vgg13'``, ``'vgg16'``, ``'vgg19'`` (all batch-normalised, as
            the benchmark's ``vgg8``/``vgg13`` are).
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (int | Sequence[int]): Stages (0 to 4; negative values
            count from the end) whose outputs are returned. Defaults to
            ``(-1, )``.
        downsample_last_stage (bool, optional): Whether to max-pool before
            stage 4. ``None`` follows the reference: pool only when the
            input height is 64. Defaults to None.
        frozen_stages (int): Number of leading stages to freeze (eval mode,
            no gradients); ``-1`` or ``0`` freezes nothing. Defaults to -1.
        norm_eval (bool): Keep every norm layer in eval mode during training.
            Defaults to False.
        conv_cfg (dict, optional): Convolution config. Defaults to None.
        norm_cfg (dict, optional): Normalization config; ``None`` builds the
            plain (norm-free) VGG. Defaults to ``dict(type='BN')``.
        init_cfg (dict | list[dict], optional): Initialization config.
            Defaults to the reference initialisation (Kaiming-normal
            fan-out convolutions with zero bias, unit norms).

    Shape:
        - Input: ``(N, in_channels, H, W)``, ``H = W = 32`` on CIFAR.
        - Output: a tuple with, for each selected stage ``i``, a tensor
          ``(N, stage_channels[i], h_i, w_i)`` where ``h_i = H / 2**i`` for
          ``i <= 3`` and ``h_4 = h_3`` (or ``h_3 / 2`` when pooled); on
          CIFAR the last stage gives ``(N, 512, 4, 4)``.

    Example:
        >>> import torch
        >>> from mmgdkd.models.backbones import CIFARVGG
        >>> model = CIFARVGG('vgg8', out_indices=(0, 1, 2, 3, 4))
        >>> [tuple(f.shape[1:3]) for f in model(torch.rand(2, 3, 32, 32))]
        [(64, 32), (128, 16), (256, 8), (512, 4), (512, 4)]
    """

    arch_zoo: Dict[str, Tuple[Tuple[int, ...], ...]] = {
        'vgg8': ((64, ), (128, ), (256, ), (512, ), (512, )),
        'vgg11': ((64, ), (128, ), (256, 256), (512, 512), (512, 512)),
        'vgg13': ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
        'vgg16': ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
                  (512, 512, 512)),
        'vgg19': ((64, 64), (128, 128), (256, 256, 256, 256),
                  (512, 512, 512, 512), (512, 512, 512, 512)),
    }
    num_stages = 5

    def __init__(self,
                 arch: str,
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (-1, ),
                 downsample_last_stage: Optional[bool] = None,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 conv_cfg: ConfigType = None,
                 norm_cfg: ConfigType = dict(type='BN', requires_grad=True),
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        if init_cfg is None:
            init_cfg = default_init_cfg()
        super().__init__(init_cfg=init_cfg)
        widths = lookup_arch(arch, self.arch_zoo, 'CIFARVGG arch')
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'frozen_stages must be in [-1, '
                             f'{self.num_stages}], got {frozen_stages}.')
        self.arch = arch
        self.out_indices = normalize_out_indices(out_indices, self.num_stages)
        self.downsample_last_stage = downsample_last_stage
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.stage_channels = tuple(stage[-1] for stage in widths)

        self.stages: List[str] = []
        stage_in = in_channels
        for i, stage_widths in enumerate(widths):
            layers: List[nn.Module] = []
            for width in stage_widths:
                # The reference keeps the conv bias even before BN; it is
                # redundant but part of the parameter count and checkpoints.
                layers.append(
                    build_conv_layer(
                        conv_cfg, stage_in, width, 3, padding=1, bias=True))
                if norm_cfg is not None:
                    layers.append(build_norm_layer(norm_cfg, width)[1])
                layers.append(nn.ReLU(inplace=True))
                stage_in = width
            name = f'block{i}'
            self.add_module(name, nn.Sequential(*layers))
            self.stages.append(name)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

        self._freeze_stages()

    def _freeze_stages(self) -> None:
        freeze_modules(
            getattr(self, name)
            for name in self.stages[:max(self.frozen_stages, 0)])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward an image batch.

        Args:
            x (torch.Tensor): Images, ``(N, in_channels, H, W)``.

        Returns:
            tuple[torch.Tensor]: The post-ReLU outputs of the stages in
            ``out_indices``; see the class docstring for their shapes.
        """
        pool_last = self.downsample_last_stage
        if pool_last is None:
            pool_last = x.shape[2] == 64
        outs = []
        for i, name in enumerate(self.stages):
            if 1 <= i <= 3 or (i == 4 and pool_last):
                x = self.pool(x)
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'CIFARVGG':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            set_norm_eval(self)
        return self
